/* Model architecture v1: the single source of truth for dimensions, the flat
 * parameter layout, the per-user state blob and the feature construction.
 * Training (model/train*.c) and serving (model/model.c) both build on this
 * header, so the forward pass that is trained is the forward pass that runs.
 *
 * Per event of a user, in this order (serving and training alike):
 *   1. x   = arch_features(state, event)             (state BEFORE the event)
 *   2. h,c = LSTM(x, h, c)                            (model/lstm.h)
 *   3. arch_state_advance(state, event)               (recent list, profile,
 *                                                      prev_*, n_events)
 *   4. p_next = head(h, state->recent)                (model/head.h)
 * The prediction made after event t is scored against event t+1's category.
 *
 * Dimensions: V, H, EC, EA, I are runtime values stored in the model file
 * (arch_dims_t); K (recent slots) and P (profile slots) are compile-time
 * because they fix the state blob layout. */
#ifndef IX_MODEL_ARCH_H
#define IX_MODEL_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/event.h"

#define ARCH_VERSION 1

#define ARCH_K 16         /* recent distinct categories kept in the state (copy head) */
#define ARCH_P 16         /* long-term profile slots */
#define ARCH_N_ACTIONS 5  /* view, cart, fav, buy, other (common/event.h action_t) */
#define ARCH_N_TIME 7     /* time/position features, see ARCH_T_* below */

#define ARCH_DEFAULT_V 1000  /* vocabulary incl. index 0 = "other" */
#define ARCH_DEFAULT_H 64
#define ARCH_DEFAULT_EC 32   /* category embedding width */
#define ARCH_DEFAULT_EA 8    /* action embedding width */
#define ARCH_DEFAULT_HALF_LIFE_S (72.0f * 3600.0f)

/* Upper bounds accepted from a model file (sanity, not tuning). */
#define ARCH_MAX_V (1u << 22)
#define ARCH_MAX_H 1024u
#define ARCH_MAX_E 1024u

/* Flags (arch_dims_t.flags). */
#define ARCH_F_SHIFT_UNIT 0x1u /* optional learned shift unit present (see layout) */
/* Serve the head's vocabulary logits with W_v rounded to bf16 (kern_gemm_bf16p,
 * h is bf16 already): a serving choice, stored with the model; parameters,
 * layout, training and the state are the same as without it. */
#define ARCH_F_HEAD_BF16 0x2u
/* The head mixes experts (the heuristics' own signals) with learned,
 * state-dependent weights instead of the vocab/copy gate; the state carries
 * ARCH_K decayed weights more (see "Experts" below). */
#define ARCH_F_EXPERTS 0x4u
#define ARCH_F_ALL (ARCH_F_SHIFT_UNIT | ARCH_F_HEAD_BF16 | ARCH_F_EXPERTS)

/* ---- Experts (flag ARCH_F_EXPERTS) -------------------------------------------
 * p_next(c) = sum_e pi_e p_e(c),  pi = softmax(W_m h + b_m) over ARCH_N_EXPERTS:
 *   ARCH_X_VOCAB    softmax(W_v h + b_v)[idx(c)] [idx(c) != 0]   (learned)
 *   ARCH_X_COPY     softmax_k(s_k) over the recent slots, s_k as in v1 (learned)
 *   ARCH_X_RECENCY  beta^k / sum_{k' < n} beta^k' over the n recent slots
 *                   (the recency baseline; beta fixed in the file)
 *   ARCH_X_DECAY    w_k / sum_k' w_k' over the recent slots, w_k the slot's
 *                   decayed count: on each event of the user every w is
 *                   multiplied by gamma * 2^(-gap_s / half_life) (half_life 0:
 *                   no time decay), then the event's category gets +1 (a new
 *                   slot enters with 1); the decay baseline over the recent
 *                   list (gamma, half_life fixed in the file)
 * beta, gamma and half_life are not trained: `interestctl train` tunes them
 * as the baselines are tuned (bl_tune on the dev day) and stores them. */
#define ARCH_N_EXPERTS 4
#define ARCH_X_VOCAB 0
#define ARCH_X_COPY 1
#define ARCH_X_RECENCY 2
#define ARCH_X_DECAY 3

typedef struct {
  uint32_t V;     /* vocabulary size, index 0 = "other" bucket */
  uint32_t H;     /* LSTM hidden size */
  uint32_t EC;    /* category embedding width */
  uint32_t EA;    /* action embedding width */
  uint32_t I;     /* LSTM input size, >= EC + EA + ARCH_N_TIME (rest zero-padded) */
  uint32_t flags; /* ARCH_F_* */
} arch_dims_t;

/* Default dims: V=1000, H=64, EC=32, EA=8, I=48, flags=0. */
void arch_dims_default(arch_dims_t *d);
/* The smallest valid I for EC and EA: EC + EA + ARCH_N_TIME rounded up to 8. */
uint32_t arch_input_size(uint32_t EC, uint32_t EA);
/* 0 if the dims are usable, else IX_EMISMATCH/IX_ERANGE with a sentence. */
int arch_dims_check(const arch_dims_t *d, char *errstr, size_t errstr_size);

/* ---- Input vector x (I floats) ----------------------------------------------
 *   x[0 .. EC)                 E_c[idx(c_t)]            category embedding
 *   x[EC .. EC+EA)             E_a[action_t]            action embedding
 *   x[EC+EA + ARCH_T_*]        time/position features:                       */
#define ARCH_T_LOGGAP 0  /* log1p(gap_s) / 12, gap_s = (ts - prev_ts)/1000, >= 0; 0 on first event */
#define ARCH_T_LT60S 1   /* gap_s < 60                (0/1; 0 on first event) */
#define ARCH_T_LT1H 2    /* gap_s < 3600              (0/1; 0 on first event) */
#define ARCH_T_GT1D 3    /* gap_s > 86400             (0/1; 0 on first event) */
#define ARCH_T_FIRST 4   /* first event of the user   (0/1) */
#define ARCH_T_REPEAT 5  /* c_t == c_{t-1} (raw category ids; 0 on first event) */
#define ARCH_T_LOGN 6    /* log1p(n_prev) / 8, n_prev = events applied before this one */
/*   x[EC+EA+ARCH_N_TIME .. I)  0                                               */

/* ---- Flat parameter layout ---------------------------------------------------
 * ONE float array, row-major, in this order (offsets from arch_layout()):
 *   emb_cat  [V x EC]       category embedding E_c (row 0 = "other")
 *   emb_act  [5 x EA]       action embedding E_a
 *   w_ih     [4H x I]       PyTorch nn.LSTM weight_ih_l0, gate rows (i, f, g, o)
 *   w_hh     [4H x H]       PyTorch weight_hh_l0
 *   b_ih     [4H]           PyTorch bias_ih_l0
 *   b_hh     [4H]           PyTorch bias_hh_l0
 *   head_wv  [V x H]        vocabulary logits z = W_v h + b_v
 *   head_bv  [V]
 *   copy_wp  [K x H]        copy logit per recency rank k: s_k = P[k].h + b_p[k]
 *   copy_bp  [K]                                          + w_f * log1p(cnt_k)
 *   copy_wf  [1]
 *   gate_wg  [H]            g = sigmoid(w_g.h + b_g): weight of the vocab softmax
 *   gate_bg  [1]            (both absent with ARCH_F_EXPERTS, replaced by:)
 *   -- only when flags & ARCH_F_EXPERTS:
 *   mix_w    [E x H]        expert logits W_m h + b_m, E = ARCH_N_EXPERTS,
 *   mix_b    [E]            rows in ARCH_X_* order
 *   x_beta   [1]            ARCH_X_RECENCY's beta     (fixed, not trained)
 *   x_gamma  [1]            ARCH_X_DECAY's gamma      (fixed, not trained)
 *   x_hl     [1]            ARCH_X_DECAY's half-life in seconds, 0 = none (fixed)
 *   -- only when flags & ARCH_F_SHIFT_UNIT:
 *   shift_w  [H]            shift_prob = sigmoid(w_s.h + w_d * logit(derived) + b_s),
 *   shift_wd [1]            derived = 1 - sum_{c in profile} p_next(c), clamped
 *   shift_b  [1]            to [1e-6, 1 - 1e-6] before the logit
 * Offsets not present are set to layout.total. */
typedef struct {
  size_t emb_cat, emb_act;
  size_t w_ih, w_hh, b_ih, b_hh;
  size_t head_wv, head_bv;
  size_t copy_wp, copy_bp, copy_wf;
  size_t gate_wg, gate_bg;
  size_t mix_w, mix_b, x_beta, x_gamma, x_hl;
  size_t shift_w, shift_wd, shift_b;
  size_t total; /* number of floats */
} arch_layout_t;

void arch_layout(const arch_dims_t *d, arch_layout_t *layout);

/* ---- Per-user state blob -----------------------------------------------------
 * Byte size at ARCH_K = ARCH_P = 16: 616 header + 4*H (h and c as bfloat16)
 *   = 872 bytes per user at H = 64 (the experts' dec_w is 64 of the 616).
 * h and c are STORED as bfloat16 (the upper 16 bits of an IEEE float32,
 * rounded to nearest even: kern_bf16_from_f32 in model/kernels.h) and
 * computed in float32: each step reads them widened (exact), runs the cell
 * in float32 and rounds the new h and c once when it stores them. The head reads h from the state, so
 * the prediction made after an event sees the rounded h, as does the next
 * step. bf16 rather than fp16: float32's exponent range (c is not bounded,
 * fp16 overflows at 65504), conversion is a shift one way and a rounding
 * add the other, and products of bf16 pairs are exact in float32 (the cell's
 * GEMM can then use vdpbf16ps); measured on the dev day, neither costs
 * accuracy (docs/PERFORMANCE.md, "State precision").
 * A fresh state is all zero except what arch_state_init sets (nothing else:
 * zero bytes are a valid fresh state, bf16 0 = +0.0f). The blob is plain
 * data, copied verbatim into checkpoints; it is only meaningful with the
 * model whose model_fingerprint() made it (recent[].idx, profile[].idx are
 * vocab indices; the fingerprint covers ARCH_STATE_FORMAT). */
#define ARCH_STATE_FORMAT 3 /* 1: h, c float32 (1064 B at H=64); 2: bf16 (808 B);
                               3: + dec_w[ARCH_K] (872 B) */

typedef struct {
  uint64_t cat;   /* raw category id */
  uint32_t count; /* events of this category since it entered the list */
  int32_t idx;    /* vocab index of cat (0 = "other") */
} arch_recent_t;  /* 16 bytes */

typedef struct {
  uint64_t cat;   /* raw category id */
  float weight;   /* decayed count, as of arch_state_t.profile_ts_ms */
  int32_t idx;    /* vocab index of cat (0 = "other") */
} arch_slot_t;    /* 16 bytes */

typedef struct {
  uint32_t n_events;     /* events applied so far */
  uint8_t prev_action;   /* action_t of the previous event */
  uint8_t n_recent;      /* filled recent[] slots, 0..ARCH_K */
  uint8_t n_profile;     /* filled profile[] slots, 0..ARCH_P */
  uint8_t reserved0;
  int64_t prev_ts_ms;    /* previous event's time */
  int64_t profile_ts_ms; /* time the profile weights refer to */
  uint64_t prev_cat;     /* previous event's raw category id */
  int32_t prev_idx;      /* its vocab index */
  uint32_t reserved1;
  arch_recent_t recent[ARCH_K]; /* recency-ranked: recent[0] = current category */
  arch_slot_t profile[ARCH_P];  /* unordered; weights decay with the half-life */
  float dec_w[ARCH_K];          /* ARCH_X_DECAY's weight of recent[k], as of prev_ts_ms
                                   (ARCH_F_EXPERTS; 0 otherwise) */
  /* followed by h[H], c[H] (bfloat16) */
} arch_state_t;

#define ARCH_STATE_HEADER_BYTES 616u
_Static_assert(sizeof(arch_state_t) == ARCH_STATE_HEADER_BYTES, "state header layout changed");

static inline size_t arch_state_size(const arch_dims_t *d) {
  return sizeof(arch_state_t) + 2u * (size_t)d->H * sizeof(uint16_t);
}
/* h[H] then c[H], bfloat16 bit patterns (borrowed views into the blob). */
static inline uint16_t *arch_state_h16(arch_state_t *s) { return (uint16_t *)(void *)(s + 1); }
static inline uint16_t *arch_state_c16(arch_state_t *s, const arch_dims_t *d) {
  return arch_state_h16(s) + d->H;
}
static inline const uint16_t *arch_state_hc16(const arch_state_t *s) {
  return (const uint16_t *)(const void *)(s + 1);
}

/* The state's h as float32 (H values). */
void arch_state_get_h(const arch_dims_t *d, const arch_state_t *s, float *h);

/* Zero a state blob of arch_state_size(d) bytes (h = c = 0, empty lists). */
void arch_state_init(const arch_dims_t *d, arch_state_t *s);

/* The ARCH_N_TIME time/position features of ev given the state BEFORE ev. */
void arch_time_features(const arch_state_t *s, const event_t *ev, float *t);

/* Build the full input x[I] for ev given the state BEFORE ev; cat_idx is the
 * vocab index of ev->category_id (0 when unknown). params is the flat array. */
void arch_features(const arch_dims_t *d, const float *params, const arch_state_t *s,
                   const event_t *ev, int32_t cat_idx, float *x);

/* Step 3 above: move ev's category to the front of the recent list (count+1;
 * a new category enters with count 1, evicting the least recent when full),
 * decay the profile to ev's time and add 1 to ev's category (model/profile.h),
 * set prev_* and n_events += 1. Leaves h and c alone. */
void arch_state_advance(arch_state_t *s, const event_t *ev, int32_t cat_idx,
                        float half_life_s);

/* arch_state_advance for a model of dims d with parameters params: with
 * ARCH_F_EXPERTS it also decays and bumps dec_w (see "Experts") in step with
 * the recent list. What serving and training call. */
void arch_state_advance_model(const arch_dims_t *d, const float *params, arch_state_t *s,
                              const event_t *ev, int32_t cat_idx, float half_life_s);

/* Action index for the embedding: ACTION_OTHER for anything out of range. */
static inline uint32_t arch_action_index(action_t a) {
  return ((unsigned)a < ARCH_N_ACTIONS) ? (uint32_t)a : (uint32_t)ACTION_OTHER;
}

#endif
