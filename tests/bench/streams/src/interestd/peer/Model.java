package interestd.peer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.zip.CRC32;

/**
 * interestd's model (model/arch.h, model/model.c, model/head.c, model/profile.c) in plain
 * Java: reads the same model file (versions 1 and 2) and runs the same serving forward pass,
 * one event of one user at a time, with the serving roundings that cost nothing here: h and c
 * stored as bfloat16, the time features and the weights of [W_ih(time) | W_hh] rounded to
 * bf16, and W_v rounded to bf16 when the file has ARCH_F_HEAD_BF16. Sums run in float32 in
 * another order than interestd's vector kernels, and exp/tanh/log come from java.lang.Math,
 * so scores agree to about 1e-6, not bit for bit (test_streams_peer states the tolerance).
 */
public final class Model {
  public static final int K = 16, P = 16, N_ACTIONS = 5, N_TIME = 7, N_EXPERTS = 4;
  public static final int F_SHIFT_UNIT = 1, F_HEAD_BF16 = 2, F_EXPERTS = 4;
  public static final int TOPK = 10, CAND = TOPK + P;

  public final int V, H, EC, EA, I, flags, G;
  public final float halfLife;
  public final long[] vocab;
  final HashMap<Long, Integer> index = new HashMap<>();
  // folded input projection (model.c model_build): t_cat[v][G], t_act[a][G] (biases in t_act)
  final float[] tCat, tAct;
  // Weights transposed, so that each product is an element-wise loop over the outputs
  // (z[v] += W[j][v] h[j]), which HotSpot's C2 compiles to AVX vector code; a dot product per
  // output row is a serial float sum, which it does not vectorise.
  final float[] wT; // N_TIME x G, bf16-rounded
  final float[] wHh; // H x G, bf16-rounded
  final float[] wv; // H x V (bf16-rounded with F_HEAD_BF16)
  final float[] bv;
  final float[] copyWp, copyBp, mixW, mixB, gateWg, shiftW;
  final float copyWf, gateBg, beta, gamma, xHl, shiftWd, shiftB;

  public Model(Path path) throws IOException {
    byte[] b = Files.readAllBytes(path);
    ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    if (b.length < 56 || !new String(b, 0, 8, "US-ASCII").equals("IXMODEL1"))
      throw new IOException(path + ": not an interestd model file");
    int version = bb.getInt(8);
    if (version < 1 || version > 2) throw new IOException(path + ": model file version " + version);
    V = bb.getInt(12); H = bb.getInt(16); EC = bb.getInt(20); EA = bb.getInt(24); I = bb.getInt(28);
    flags = bb.getInt(32);
    halfLife = bb.getFloat(36);
    long nParams = bb.getLong(40);
    int noteLen = bb.getInt(48);
    G = 4 * H;
    if (V < 2 || H < 1 || I < EC + EA + N_TIME || (flags & ~7) != 0 || noteLen > 1024)
      throw new IOException(path + ": invalid dimensions");
    if (version < 2 && (flags & F_EXPERTS) != 0) throw new IOException(path + ": v1 with experts");
    // the flat layout (arch_layout)
    long off = 0;
    long oEmbCat = off; off += (long) V * EC;
    long oEmbAct = off; off += (long) N_ACTIONS * EA;
    long oWih = off; off += (long) G * I;
    long oWhh = off; off += (long) G * H;
    long oBih = off; off += G;
    long oBhh = off; off += G;
    long oWv = off; off += (long) V * H;
    long oBv = off; off += V;
    long oCopyWp = off; off += (long) K * H;
    long oCopyBp = off; off += K;
    long oCopyWf = off; off += 1;
    long oMixW = -1, oMixB = -1, oBeta = -1, oGamma = -1, oHl = -1, oGateWg = -1, oGateBg = -1;
    if ((flags & F_EXPERTS) != 0) {
      oMixW = off; off += (long) N_EXPERTS * H;
      oMixB = off; off += N_EXPERTS;
      oBeta = off; off += 1;
      oGamma = off; off += 1;
      oHl = off; off += 1;
    } else {
      oGateWg = off; off += H;
      oGateBg = off; off += 1;
    }
    long oShW = -1, oShWd = -1, oShB = -1;
    if ((flags & F_SHIFT_UNIT) != 0) {
      oShW = off; off += H;
      oShWd = off; off += 1;
      oShB = off; off += 1;
    }
    if (nParams != off) throw new IOException(path + ": " + nParams + " parameters, dims need " + off);
    long need = 52L + noteLen + 8L * V + 4L * off + 4;
    if (b.length != need) throw new IOException(path + ": " + b.length + " bytes, expected " + need);
    CRC32 crc = new CRC32();
    crc.update(b, 0, (int) need - 4);
    if ((int) crc.getValue() != bb.getInt((int) need - 4))
      throw new IOException(path + ": checksum mismatch");
    int q = 52 + noteLen;
    vocab = new long[V];
    for (int v = 0; v < V; v++) vocab[v] = bb.getLong(q + 8 * v);
    vocab[0] = 0;
    for (int v = 1; v < V; v++) index.put(vocab[v], v);
    q += 8 * V;
    float[] p = new float[(int) off];
    bb.position(q);
    bb.asFloatBuffer().get(p);
    for (float x : p) if (!Float.isFinite(x)) throw new IOException(path + ": non-finite parameter");

    tCat = new float[V * G];
    for (int v = 0; v < V; v++)
      for (int j = 0; j < G; j++) {
        double s = 0;
        for (int k = 0; k < EC; k++) s += (double) p[(int) oEmbCat + v * EC + k] * p[(int) oWih + j * I + k];
        tCat[v * G + j] = (float) s;
      }
    tAct = new float[N_ACTIONS * G];
    for (int a = 0; a < N_ACTIONS; a++)
      for (int j = 0; j < G; j++) {
        double s = (double) p[(int) oBih + j] + (double) p[(int) oBhh + j];
        for (int k = 0; k < EA; k++) s += (double) p[(int) oEmbAct + a * EA + k] * p[(int) oWih + j * I + EC + k];
        tAct[a * G + j] = (float) s;
      }
    wT = new float[N_TIME * G];
    for (int j = 0; j < G; j++)
      for (int k = 0; k < N_TIME; k++) wT[k * G + j] = bf16(p[(int) oWih + j * I + EC + EA + k]);
    wHh = new float[H * G];
    for (int j = 0; j < G; j++)
      for (int m = 0; m < H; m++) wHh[m * G + j] = bf16(p[(int) oWhh + j * H + m]);
    wv = new float[H * V];
    boolean headBf16 = (flags & F_HEAD_BF16) != 0;
    for (int v = 0; v < V; v++)
      for (int m = 0; m < H; m++) {
        float w = p[(int) oWv + v * H + m];
        wv[m * V + v] = headBf16 ? bf16(w) : w;
      }
    bv = slice(p, oBv, V);
    copyWp = slice(p, oCopyWp, K * H);
    copyBp = slice(p, oCopyBp, K);
    copyWf = p[(int) oCopyWf];
    if ((flags & F_EXPERTS) != 0) {
      mixW = slice(p, oMixW, N_EXPERTS * H);
      mixB = slice(p, oMixB, N_EXPERTS);
      beta = p[(int) oBeta]; gamma = p[(int) oGamma]; xHl = p[(int) oHl];
      gateWg = null; gateBg = 0;
    } else {
      mixW = null; mixB = null; beta = gamma = xHl = 0;
      gateWg = slice(p, oGateWg, H);
      gateBg = p[(int) oGateBg];
    }
    if ((flags & F_SHIFT_UNIT) != 0) {
      shiftW = slice(p, oShW, H); shiftWd = p[(int) oShWd]; shiftB = p[(int) oShB];
    } else {
      shiftW = null; shiftWd = shiftB = 0;
    }
  }

  private static float[] slice(float[] p, long off, int n) {
    float[] r = new float[n];
    System.arraycopy(p, (int) off, r, 0, n);
    return r;
  }

  /** float32 -> bfloat16 bits, nearest even, subnormals to signed zero (kern_bf16_from_f32). */
  public static short bf16Bits(float x) {
    int u = Float.floatToRawIntBits(x);
    if ((u & 0x7f800000) == 0) return (short) ((u >>> 16) & 0x8000);
    long r = ((u & 0xffffffffL) + 0x7fff + ((u >>> 16) & 1)) >>> 16;
    return (short) r;
  }

  public static float bf16ToF(short s) {
    return Float.intBitsToFloat((s & 0xffff) << 16);
  }

  public static float bf16(float x) {
    return bf16ToF(bf16Bits(x));
  }

  public int vocabIndex(long cat) {
    Integer i = index.get(cat);
    return i == null ? 0 : i;
  }

  /** Per-user state (not shared between threads), the fields of arch_state_t; h and c as bf16 bits. */
  public final class State {
    public int nEvents;
    int prevAction, nRecent, nProfile;
    long prevTs, profileTs, prevCat;
    int prevIdx;
    final long[] recCat = new long[K];
    final int[] recCount = new int[K];
    final int[] recIdx = new int[K];
    final long[] profCat = new long[P];
    final float[] profW = new float[P];
    final int[] profIdx = new int[P];
    final float[] decW = new float[K];
    final short[] h = new short[H], c = new short[H];
  }

  public State newState() {
    return new State();
  }

  /** The state blob's size: arch_state_t's 616-byte header, then h and c as bf16. */
  public int stateBytes() {
    return 616 + 4 * H;
  }

  /** The state in arch_state_t's byte layout (little-endian), what interestd checkpoints. */
  public byte[] serialize(State s) {
    ByteBuffer b = ByteBuffer.allocate(stateBytes()).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(s.nEvents).put((byte) s.prevAction).put((byte) s.nRecent).put((byte) s.nProfile).put((byte) 0);
    b.putLong(s.prevTs).putLong(s.profileTs).putLong(s.prevCat).putInt(s.prevIdx).putInt(0);
    for (int k = 0; k < K; k++) b.putLong(s.recCat[k]).putInt(s.recCount[k]).putInt(s.recIdx[k]);
    for (int j = 0; j < P; j++) b.putLong(s.profCat[j]).putFloat(s.profW[j]).putInt(s.profIdx[j]);
    for (int k = 0; k < K; k++) b.putFloat(s.decW[k]);
    for (int j = 0; j < H; j++) b.putShort(s.h[j]);
    for (int j = 0; j < H; j++) b.putShort(s.c[j]);
    return b.array();
  }

  public State deserialize(byte[] a) {
    State s = new State();
    if (a == null) return s;
    if (a.length != stateBytes()) throw new IllegalArgumentException("state of " + a.length + " bytes");
    ByteBuffer b = ByteBuffer.wrap(a).order(ByteOrder.LITTLE_ENDIAN);
    s.nEvents = b.getInt();
    s.prevAction = b.get() & 0xff; s.nRecent = b.get() & 0xff; s.nProfile = b.get() & 0xff; b.get();
    s.prevTs = b.getLong(); s.profileTs = b.getLong(); s.prevCat = b.getLong(); s.prevIdx = b.getInt(); b.getInt();
    for (int k = 0; k < K; k++) { s.recCat[k] = b.getLong(); s.recCount[k] = b.getInt(); s.recIdx[k] = b.getInt(); }
    for (int j = 0; j < P; j++) { s.profCat[j] = b.getLong(); s.profW[j] = b.getFloat(); s.profIdx[j] = b.getInt(); }
    for (int k = 0; k < K; k++) s.decW[k] = b.getFloat();
    for (int j = 0; j < H; j++) s.h[j] = b.getShort();
    for (int j = 0; j < H; j++) s.c[j] = b.getShort();
    return s;
  }

  /** One category with its probability (or difference). */
  public static final class Cat {
    public final long id;
    public final float p;
    Cat(long id, float p) { this.id = id; this.p = p; }
  }

  /** prediction_t without the source fields. */
  public static final class Prediction {
    public int nEvents;
    public float fluctuation, shift;
    public final long[] nextCat = new long[TOPK], longCat = new long[TOPK], riseCat = new long[TOPK], fallCat = new long[TOPK];
    public final float[] nextP = new float[TOPK], longP = new float[TOPK], riseP = new float[TOPK], fallP = new float[TOPK];
    public int nNext, nLong, nRise, nFall;
  }

  // scratch (a Model serves one stream thread)
  private final float[] x = new float[N_TIME];
  private final float[] gates = new float[4 * 1024];
  private final float[] hf = new float[1024];
  private float[] zbuf;

  private static float sigmoid(float v) {
    return (float) (1.0 / (1.0 + Math.exp(-v)));
  }

  private static float log1pf(float v) {
    return (float) Math.log1p(v);
  }

  /** arch_time_features into x, then rounded to bf16 as the serving cell reads them. */
  private void timeFeatures(State s, long cat, long ts) {
    java.util.Arrays.fill(x, 0f);
    if (s.nEvents == 0) {
      x[4] = 1f;
    } else {
      long dms = ts - s.prevTs;
      float gap = dms > 0 ? (float) ((double) dms / 1000.0) : 0f;
      x[0] = log1pf(gap) / 12f;
      x[1] = gap < 60f ? 1f : 0f;
      x[2] = gap < 3600f ? 1f : 0f;
      x[3] = gap > 86400f ? 1f : 0f;
      x[5] = cat == s.prevCat ? 1f : 0f;
    }
    x[6] = log1pf((float) (s.nEvents & 0xffffffffL)) / 8f;
    for (int k = 0; k < N_TIME; k++) x[k] = bf16(x[k]);
  }

  /** One event: the LSTM step, the state's bookkeeping, then the head's prediction. */
  public synchronized void step(State s, long cat, int action, long ts, Prediction out) {
    int idx = vocabIndex(cat);
    int a = action >= 0 && action < N_ACTIONS ? action : N_ACTIONS - 1;
    timeFeatures(s, cat, ts);
    for (int j = 0; j < H; j++) hf[j] = bf16ToF(s.h[j]);
    final int tc = idx * G, ta = a * G;
    for (int j = 0; j < G; j++) gates[j] = tCat[tc + j] + tAct[ta + j];
    for (int k = 0; k < N_TIME; k++) axpy(gates, wT, k * G, x[k], G);
    for (int m = 0; m < H; m++) axpy(gates, wHh, m * G, hf[m], G);
    for (int j = 0; j < H; j++) {
      float ig = sigmoid(gates[j]), fg = sigmoid(gates[H + j]);
      float gg = (float) Math.tanh(gates[2 * H + j]), og = sigmoid(gates[3 * H + j]);
      float cn = fg * bf16ToF(s.c[j]) + ig * gg;
      float hn = og * (float) Math.tanh(cn);
      s.c[j] = bf16Bits(cn);
      s.h[j] = bf16Bits(hn);
    }
    advance(s, cat, idx, ts, a);
    predict(s, out);
  }

  /** y[i] += w[off + i] * a for i < n: element-wise, vectorised by C2. */
  private static void axpy(float[] y, float[] w, int off, float a, int n) {
    if (a == 0f) return;
    for (int i = 0; i < n; i++) y[i] += w[off + i] * a;
  }

  /** Four partial sums: the JIT keeps them in registers (a plain loop's float sum is serial). */
  private static float dot(float[] w, int off, float[] v, int n) {
    float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
    int i = 0;
    for (; i + 3 < n; i += 4) {
      s0 += w[off + i] * v[i];
      s1 += w[off + i + 1] * v[i + 1];
      s2 += w[off + i + 2] * v[i + 2];
      s3 += w[off + i + 3] * v[i + 3];
    }
    for (; i < n; i++) s0 += w[off + i] * v[i];
    return (s0 + s1) + (s2 + s3);
  }

  /** arch_state_advance_model: decay and bump dec_w, recent list, profile, prev_*. */
  private void advance(State s, long cat, int idx, long ts, int a) {
    boolean experts = (flags & F_EXPERTS) != 0;
    if (experts && s.nEvents > 0) {
      double f = gamma, hl = xHl;
      long dms = ts - s.prevTs;
      if (hl > 0 && dms > 0) f *= Math.pow(2.0, -(double) dms / 1000.0 / hl);
      for (int k = 0; k < s.nRecent && k < K; k++) s.decW[k] = (float) ((double) s.decW[k] * f);
    }
    // recent_touch
    int n = s.nRecent, r;
    for (r = 0; r < n; r++) if (s.recCat[r] == cat) break;
    long eCat; int eCount, eIdx; float w = 1f;
    if (r < n) {
      eCat = s.recCat[r]; eCount = s.recCount[r] + (s.recCount[r] != -1 ? 1 : 0); eIdx = s.recIdx[r];
      if (experts) w = s.decW[r] + 1f;
    } else {
      eCat = cat; eCount = 1; eIdx = idx;
      if (n < K) s.nRecent = ++n;
      r = n - 1;
    }
    System.arraycopy(s.recCat, 0, s.recCat, 1, r);
    System.arraycopy(s.recCount, 0, s.recCount, 1, r);
    System.arraycopy(s.recIdx, 0, s.recIdx, 1, r);
    s.recCat[0] = eCat; s.recCount[0] = eCount; s.recIdx[0] = eIdx;
    if (experts) {
      System.arraycopy(s.decW, 0, s.decW, 1, r);
      s.decW[0] = w;
    }
    // profile_decay
    if (s.nProfile == 0 || ts <= s.profileTs || !(halfLife > 0f)) {
      if (ts > s.profileTs || s.nProfile == 0) s.profileTs = ts;
    } else {
      double dt = (double) (ts - s.profileTs) / 1000.0;
      float f = (float) Math.pow(2.0, -dt / (double) halfLife);
      for (int j = 0; j < s.nProfile; j++) s.profW[j] *= f;
      s.profileTs = ts;
    }
    // profile_add
    int np = s.nProfile, j;
    for (j = 0; j < np; j++) if (s.profCat[j] == cat) break;
    if (j < np) {
      s.profW[j] += 1f;
    } else {
      int slot;
      if (np < P) {
        slot = np;
        s.nProfile = np + 1;
      } else {
        slot = 0;
        for (int i = 1; i < np; i++) if (s.profW[i] < s.profW[slot]) slot = i;
      }
      s.profCat[slot] = cat; s.profW[slot] = 1f; s.profIdx[slot] = idx;
    }
    s.prevCat = cat; s.prevIdx = idx; s.prevTs = ts; s.prevAction = a;
    if (s.nEvents != -1) s.nEvents++;
  }

  private final float[] pi = new float[N_EXPERTS];
  private final float[] mSlot = new float[K], pCopy = new float[K], oov = new float[K];
  private final long[] candCat = new long[CAND];
  private final float[] candP = new float[CAND];
  private final float[] pp = new float[P], plong = new float[P], prec = new float[K], pdec = new float[K];

  /** The head on the state's (bf16) h: p_next over the vocabulary and the recent slots,
   *  then the prediction's fields (model.c predict_one). */
  private void predict(State s, Prediction out) {
    if (zbuf == null) zbuf = new float[V];
    final float[] q = zbuf;
    for (int j = 0; j < H; j++) hf[j] = bf16ToF(s.h[j]);
    System.arraycopy(bv, 0, q, 0, V);
    for (int m = 0; m < H; m++) axpy(q, wv, m * V, hf[m], V);
    float mx = Float.NEGATIVE_INFINITY;
    for (int v = 0; v < V; v++) mx = Math.max(mx, q[v]);
    // gate or experts, copy distribution (finish_gate_copy)
    final boolean experts = (flags & F_EXPERTS) != 0;
    float g;
    if (experts) {
      float emx = Float.NEGATIVE_INFINITY, sum = 0f;
      for (int e = 0; e < N_EXPERTS; e++) {
        pi[e] = dot(mixW, e * H, hf, H) + mixB[e];
        if (pi[e] > emx) emx = pi[e];
      }
      for (int e = 0; e < N_EXPERTS; e++) sum += (pi[e] = (float) Math.exp(pi[e] - emx));
      for (int e = 0; e < N_EXPERTS; e++) pi[e] /= sum;
      g = pi[0];
    } else {
      g = sigmoid(dot(gateWg, 0, hf, H) + gateBg);
      pi[0] = g; pi[1] = 1f - g; pi[2] = pi[3] = 0f;
    }
    int n = Math.min(s.nRecent, K);
    java.util.Arrays.fill(mSlot, 0f);
    if (n > 0) {
      float cmx = Float.NEGATIVE_INFINITY;
      for (int k = 0; k < n; k++) {
        pCopy[k] = dot(copyWp, k * H, hf, H) + copyBp[k] + copyWf * log1pf((float) (s.recCount[k] & 0xffffffffL));
        if (pCopy[k] > cmx) cmx = pCopy[k];
      }
      float sum = 0f;
      for (int k = 0; k < n; k++) sum += (pCopy[k] = (float) Math.exp(pCopy[k] - cmx));
      for (int k = 0; k < n; k++) pCopy[k] /= sum;
      if (!experts) {
        for (int k = 0; k < n; k++) mSlot[k] = (1f - g) * pCopy[k];
      } else {
        float b = 1f, sr = 0f, sd = 0f;
        for (int k = 0; k < n; k++) {
          sr += (prec[k] = b);
          b *= beta;
          sd += (pdec[k] = s.decW[k] > 0f ? s.decW[k] : 0f);
        }
        for (int k = 0; k < n; k++) {
          prec[k] /= sr;
          pdec[k] = sd > 0f ? pdec[k] / sd : 1f / (float) n;
          mSlot[k] = pi[1] * pCopy[k] + pi[2] * prec[k] + pi[3] * pdec[k];
        }
      }
    }
    // the vocabulary softmax, weighted by g (kern_softmax_gate)
    float sum = 0f;
    for (int v = 0; v < V; v++) sum += (q[v] = (float) Math.exp(q[v] - mx));
    float inv = 1f / sum;
    for (int v = 0; v < V; v++) q[v] = q[v] * inv * g;
    // mix_copy
    java.util.Arrays.fill(oov, 0f);
    for (int k = 0; k < n; k++) {
      int ix = s.recIdx[k];
      if (ix > 0 && ix < V) q[ix] += mSlot[k];
      else oov[k] = mSlot[k];
    }
    // predict_one
    int np = Math.min(s.nProfile, P);
    for (int j = 0; j < np; j++) {
      int ix = s.profIdx[j];
      float p = 0f;
      if (ix > 0 && ix < V) p = q[ix];
      else for (int k = 0; k < n; k++) if (s.recCat[k] == s.profCat[j]) p = oov[k];
      pp[j] = p;
    }
    float psum = 0f;
    for (int j = 0; j < np; j++) psum += s.profW[j];
    for (int j = 0; j < np; j++) plong[j] = psum > 0f ? s.profW[j] / psum : 0f;
    out.nEvents = s.nEvents;
    out.fluctuation = js(np);
    double in = 0;
    for (int j = 0; j < np; j++) in += pp[j];
    float shift = (float) Math.max(0.0, Math.min(1.0, 1.0 - in));
    if ((flags & F_SHIFT_UNIT) != 0) {
      float ds = shift < 1e-6f ? 1e-6f : shift > 1f - 1e-6f ? 1f - 1e-6f : shift;
      float a = shiftB + shiftWd * (float) Math.log(ds / (1f - ds));
      for (int j = 0; j < H; j++) a += shiftW[j] * hf[j];
      shift = sigmoid(a);
    }
    out.shift = shift;
    // head_topk: the vocabulary (ties: lower index first), then out-of-vocabulary recent slots
    int m = 0;
    float thr = -1f;
    for (int v = 1; v < V; v++) {
      if (q[v] > thr && vocab[v] != 0) {
        m = put(CAND, m, candCat, candP, vocab[v], q[v]);
        if (m == CAND) thr = candP[CAND - 1];
      }
    }
    for (int r = 0; r < n; r++) {
      if (s.recIdx[r] > 0 || !(oov[r] > 0f)) continue;
      if (m < CAND || oov[r] > candP[m - 1]) m = put(CAND, m, candCat, candP, s.recCat[r], oov[r]);
    }
    out.nNext = Math.min(m, TOPK);
    for (int i = 0; i < out.nNext; i++) { out.nextCat[i] = candCat[i]; out.nextP[i] = candP[i]; }
    // rising: candidates outside the profile, then the profile's own rises
    int mr = 0;
    for (int i = 0; i < m; i++) {
      float d = candP[i];
      if (!(d > 0f && (mr < TOPK || d > out.riseP[mr - 1]))) continue;
      boolean member = false;
      for (int j = 0; j < np; j++) member |= s.profCat[j] == candCat[i];
      if (!member) mr = put(TOPK, mr, out.riseCat, out.riseP, candCat[i], d);
    }
    for (int j = 0; j < np; j++) {
      float d = pp[j] - plong[j];
      if (d > 0f && (mr < TOPK || d > out.riseP[mr - 1])) mr = put(TOPK, mr, out.riseCat, out.riseP, s.profCat[j], d);
    }
    out.nRise = mr;
    int mf = 0;
    for (int j = 0; j < np; j++) {
      float d = plong[j] - pp[j];
      if (!(d > 0f) || (mf == TOPK && !(d > out.fallP[mf - 1]))) continue;
      mf = put(TOPK, mf, out.fallCat, out.fallP, s.profCat[j], d);
    }
    out.nFall = mf;
    // long term: stable sort, descending
    int nl = 0;
    for (int j = 0; j < np; j++) {
      long c = s.profCat[j];
      float v = plong[j];
      int at = Math.min(nl, TOPK);
      if (at == TOPK && !(v > out.longP[TOPK - 1])) continue;
      if (at == TOPK) at = TOPK - 1;
      while (at > 0 && out.longP[at - 1] < v) {
        out.longP[at] = out.longP[at - 1];
        out.longCat[at] = out.longCat[at - 1];
        at--;
      }
      out.longP[at] = v;
      out.longCat[at] = c;
      if (nl < TOPK) nl++;
    }
    out.nLong = nl;
  }

  /** topk_put: insert (c, v) into the descending list of at most k; ties keep the earlier. */
  private static int put(int k, int m, long[] cat, float[] p, long c, float v) {
    int at = m < k ? m : k - 1;
    while (at > 0 && p[at - 1] < v) {
      p[at] = p[at - 1];
      cat[at] = cat[at - 1];
      at--;
    }
    p[at] = v;
    cat[at] = c;
    return m < k ? m + 1 : m;
  }

  /** profile_js: Jensen-Shannon divergence (base 2) of p_next on the profile vs p_long. */
  private float js(int n) {
    double inside = 0, js = 0;
    for (int j = 0; j < n; j++) {
      double p = pp[j] > 0f ? pp[j] : 0.0, q = plong[j] > 0f ? plong[j] : 0.0;
      inside += p;
      js += 0.5 * jsTerm(p, q) + 0.5 * jsTerm(q, p);
    }
    double outside = 1.0 - inside;
    if (outside > 0.0) js += 0.5 * outside;
    if (js < 0.0) js = 0.0;
    if (js > 1.0) js = 1.0;
    return (float) js;
  }

  private static final double LN2 = Math.log(2.0);

  private static double jsTerm(double x, double y) {
    return x > 0.0 ? x * (Math.log(2.0 * x / (x + y)) / LN2) : 0.0;
  }
}
