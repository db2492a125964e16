/* interestctl cat: print a record file's records with their values decoded
 * as events or predictions (auto-detected per record), as text or JSON lines.
 * A damaged tail is reported with its byte offset and exit status 1. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "ctl/ctl.h"
#include "ctl/ctlevents.h"
#include "ctl/ctlutil.h"
#include "stream/codec.h"
#include "stream/recfile.h"

enum { AS_AUTO, AS_EVENT, AS_PREDICTION };

static void usage(FILE *out) {
  fprintf(out, "usage: interestctl cat FILE [--limit N] [--json] [--as auto|event|prediction]\n"
               "                       [--input-config interestd.conf] [--input KEY=VALUE]...\n"
               "  --input-config, --input  decode events as the daemon's [input] says (default msgpack)\n");
}

static void put_bytes(const void *p, size_t n, int json) {
  const unsigned char *s = p;
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = s[i];
    if (ch == '"' || ch == '\\') printf("\\%c", ch);
    else if (ch >= 0x20 && ch < 0x7f) putchar(ch);
    else if (json) printf("\\u%04x", ch);
    else printf("\\x%02x", ch);
  }
  putchar('"');
}

static void put_float(float f) {
  if (isfinite(f)) printf("%.6g", (double)f);
  else printf("null");
}

static void put_cats(const char *name, const pred_cat_t *cats, uint32_t n, int json) {
  printf(json ? ",\"%s\":[" : " %s=[", name);
  for (uint32_t i = 0; i < n; i++) {
    if (json) {
      printf("%s[%llu,", i ? "," : "", (unsigned long long)cats[i].category_id);
      put_float(cats[i].p);
      putchar(']');
    } else {
      printf("%s%llu:", i ? " " : "", (unsigned long long)cats[i].category_id);
      put_float(cats[i].p);
    }
  }
  putchar(']');
}

static void put_event(const event_t *ev, int json) {
  if (json)
    printf(",\"event\":{\"u\":%llu,\"i\":%llu,\"c\":%llu,\"a\":\"%s\",\"t\":%lld}",
           (unsigned long long)ev->user_id, (unsigned long long)ev->item_id,
           (unsigned long long)ev->category_id, codec_action_name(ev->action),
           (long long)ev->ts_ms);
  else
    printf(" event u=%llu i=%llu c=%llu a=%s t=%lld", (unsigned long long)ev->user_id,
           (unsigned long long)ev->item_id, (unsigned long long)ev->category_id,
           codec_action_name(ev->action), (long long)ev->ts_ms);
}

static void put_prediction(const prediction_t *p, int json) {
  if (json) {
    printf(",\"prediction\":{\"u\":%llu,\"sp\":%d,\"so\":%lld,\"t\":%lld,\"et\":%lld,\"n\":%u,\"fl\":",
           (unsigned long long)p->user_id, (int)p->src_partition, (long long)p->src_offset,
           (long long)p->event_ts_ms, (long long)p->emit_ts_ms, (unsigned)p->n_events);
    put_float(p->fluctuation);
    printf(",\"sh\":");
    put_float(p->shift_prob);
  } else {
    printf(" prediction u=%llu sp=%d so=%lld t=%lld et=%lld n=%u fl=", (unsigned long long)p->user_id,
           (int)p->src_partition, (long long)p->src_offset, (long long)p->event_ts_ms,
           (long long)p->emit_ts_ms, (unsigned)p->n_events);
    put_float(p->fluctuation);
    printf(" sh=");
    put_float(p->shift_prob);
  }
  put_cats("nx", p->next, p->n_next, json);
  put_cats("lt", p->longterm, p->n_long, json);
  put_cats("ri", p->rising, p->n_rising, json);
  put_cats("fa", p->falling, p->n_falling, json);
  if (json) putchar('}');
}

static void put_undecodable(const rec_t *rec, int err, const char *why, int json) {
  const unsigned char *v = rec->value;
  size_t n = rec->value_len < 64 ? rec->value_len : 64;
  if (json) {
    printf(",\"error\":");
    put_bytes(why, strlen(why), 1);
    printf(",\"code\":\"%s\",\"value_hex\":\"", ix_err_name(err));
  } else {
    printf(" undecodable (%s: %s) value=", ix_err_name(err), why);
  }
  for (size_t i = 0; i < n; i++) printf("%02x", v[i]);
  if (n < rec->value_len) printf("...");
  if (json) putchar('"');
}

int ctl_cat(int argc, char **argv) {
  static const struct option longopts[] = {{"limit", required_argument, NULL, 'n'},
                                           {"json", no_argument, NULL, 'j'},
                                           {"as", required_argument, NULL, 'a'},
                                           {"input", required_argument, NULL, 'I'},
                                           {"input-config", required_argument, NULL, 'F'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  uint64_t limit = 0;
  int json = 0, as = AS_AUTO, c, have_input = 0;
  input_opts_t io;
  optind = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'n':
      if (ctlutil_parse_u64(optarg, &limit)) {
        fprintf(stderr, "interestctl cat: --limit must be a number\n");
        return 2;
      }
      break;
    case 'j': json = 1; break;
    case 'a':
      if (strcmp(optarg, "auto") == 0) as = AS_AUTO;
      else if (strcmp(optarg, "event") == 0) as = AS_EVENT;
      else if (strcmp(optarg, "prediction") == 0) as = AS_PREDICTION;
      else {
        usage(stderr);
        return 2;
      }
      break;
    case 'I':
    case 'F': {
      int rc = ctlev_input_option(&io, &have_input, c, "cat", optarg);
      if (rc) return rc;
      break;
    }
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc - 1) {
    usage(stderr);
    return 2;
  }
  const char *path = argv[optind];
  rec_reader_t *r = NULL;
  input_t *in = NULL;
  char errstr[512];
  int rc = have_input ? input_new(&io, &in, errstr, sizeof errstr) : 0;
  if (have_input) input_opts_free(&io);
  if (!rc) rc = recfile_reader_open(path, &r, errstr, sizeof errstr);
  if (rc) {
    fprintf(stderr, "interestctl cat: %s\n", errstr);
    input_destroy(in);
    return 1;
  }
  uint64_t n = 0;
  rec_t rec;
  int rrc = 0;
  while ((!limit || n < limit) && (rrc = recfile_read(r, &rec)) == 0) {
    n++;
    if (json) {
      printf("{\"partition\":%d,\"offset\":%lld,\"ts\":%lld,\"key\":", (int)rec.partition,
             (long long)rec.offset, (long long)rec.ts_ms);
      put_bytes(rec.key, rec.key_len, 1);
    } else {
      printf("p=%d o=%lld ts=%lld key=", (int)rec.partition, (long long)rec.offset,
             (long long)rec.ts_ms);
      put_bytes(rec.key, rec.key_len, 0);
    }
    event_t ev;
    prediction_t pred;
    char why[256] = "";
    int erc = IX_EINVAL, prc = IX_EINVAL;
    if (as != AS_PREDICTION) erc = input_decode(in, &rec, &ev, why, sizeof why);
    if (erc == 0) {
      put_event(&ev, json);
    } else {
      char pwhy[256];
      if (as != AS_EVENT)
        prc = codec_decode_prediction(rec.value, rec.value_len, &pred, pwhy, sizeof pwhy);
      if (prc == 0) put_prediction(&pred, json);
      else if (as == AS_PREDICTION) put_undecodable(&rec, prc, pwhy, json);
      else put_undecodable(&rec, erc, why, json);
    }
    fputs(json ? "}\n" : "\n", stdout);
  }
  int status = 0;
  if (rrc && rrc != IX_EEOF) {
    fflush(stdout);
    fprintf(stderr,
            "interestctl cat: %s: damaged record at byte offset %llu (%s: %s); the %llu records "
            "before it were printed\n",
            path, (unsigned long long)recfile_reader_error_offset(r), ix_err_name(rrc),
            ix_strerror(rrc), (unsigned long long)n);
    status = 1;
  }
  recfile_reader_close(r);
  input_destroy(in);
  if (fflush(stdout) != 0) status = 1;
  return status;
}
