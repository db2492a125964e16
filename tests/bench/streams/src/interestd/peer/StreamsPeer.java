package interestd.peer;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;
import org.msgpack.core.MessageBufferPacker;
import org.msgpack.core.MessageFormat;
import org.msgpack.core.MessagePack;
import org.msgpack.core.MessageUnpacker;
import org.msgpack.value.ValueType;

/**
 * What a JVM team would build instead of interestd: a Kafka Streams application that reads
 * the msgpack clickstream (docs/FORMATS.md), keeps each user's state (arch_state_t's bytes:
 * LSTM h and c as bf16, the recent list, the long-term profile) in a persistent RocksDB
 * key-value store with its changelog topic (the Streams defaults), runs interestd's model
 * from the same model file (Model.java) and writes the same msgpack predictions, keyed by the
 * user id in decimal, with the record timestamp set to the wall clock when it is made (as
 * interestd's producer does).
 *
 * usage: StreamsPeer BOOTSTRAP INPUT OUTPUT APPLICATION_ID STATE_DIR MODEL [KEY=VALUE...]
 *   KEY=VALUE pairs are Streams/client properties (e.g. commit.interval.ms=5000).
 * The input topic must be partitioned by user (as interestd's is): the store is per input
 * partition, so a user's events must all be in one partition (no repartition step).
 * Prints "streams-peer: RUNNING" when the instance is running, restore figures from the
 * restore listener, and a line per 100,000 events; exits on SIGTERM (clean close).
 */
public final class StreamsPeer {
  static final String STORE = "users";
  static final AtomicLong rejected = new AtomicLong(), processed = new AtomicLong();

  /** A decoded event (common/event.h). */
  static final class Event {
    long user, item, cat, ts;
    int action = 4;
  }

  /** codec_hash_id: a canonical decimal uint64 is its value, any other string its FNV-1a 64. */
  static long hashId(byte[] s) {
    boolean canon = s.length > 0 && s.length <= 20 && !(s.length > 1 && s[0] == '0');
    BigInteger v = null;
    if (canon) {
      for (byte c : s) if (c < '0' || c > '9') { canon = false; break; }
      if (canon) {
        v = new BigInteger(new String(s, StandardCharsets.US_ASCII));
        if (v.bitLength() > 64) canon = false;
      }
    }
    if (canon) return v.longValue();
    long h = 0xcbf29ce484222325L;
    for (byte c : s) {
      h ^= (c & 0xff);
      h *= 0x100000001b3L;
    }
    return h;
  }

  static long readId(MessageUnpacker u, String name) throws IOException {
    MessageFormat f = u.getNextFormat();
    if (f.getValueType() == ValueType.INTEGER) {
      if (f == MessageFormat.UINT64) return u.unpackBigInteger().longValue();
      long v = u.unpackLong();
      if (v < 0) throw new IOException("field '" + name + "' is negative: " + v);
      return v;
    }
    if (f.getValueType() == ValueType.STRING) {
      int n = u.unpackRawStringHeader();
      if (n == 0) throw new IOException("field '" + name + "' is an empty string");
      if (n > 256) throw new IOException("field '" + name + "' is longer than 256 bytes");
      return hashId(u.readPayload(n));
    }
    throw new IOException("field '" + name + "' has the wrong type: " + f.getValueType());
  }

  static int actionOf(MessageUnpacker u) throws IOException {
    MessageFormat f = u.getNextFormat();
    if (f.getValueType() == ValueType.STRING) {
      switch (u.unpackString()) {
        case "view": case "pv": case "click": return 0;
        case "cart": return 1;
        case "fav": return 2;
        case "buy": return 3;
        default: return 4;
      }
    }
    if (f.getValueType() == ValueType.INTEGER && f != MessageFormat.UINT64) {
      long v = u.unpackLong();
      return v >= 0 && v <= 3 ? (int) v : 4;
    }
    u.skipValue();
    return 4;
  }

  /** The event of a msgpack map (docs/FORMATS.md "Event message"); throws on bad input. */
  static Event decode(byte[] b) throws IOException {
    if (b == null || b.length == 0) throw new IOException("event message is empty");
    if (b.length > 4096) throw new IOException("event message is more than 4096 bytes");
    Event e = new Event();
    boolean hasU = false, hasC = false, hasT = false;
    try (MessageUnpacker u = MessagePack.newDefaultUnpacker(b)) {
      if (u.getNextFormat().getValueType() != ValueType.MAP) throw new IOException("event message is not a msgpack map");
      int n = u.unpackMapHeader();
      for (int i = 0; i < n; i++) {
        if (u.getNextFormat().getValueType() != ValueType.STRING) {
          u.skipValue();
          u.skipValue();
          continue;
        }
        String k = u.unpackString();
        switch (k) {
          case "u": e.user = readId(u, "u"); hasU = true; break;
          case "c": e.cat = readId(u, "c"); hasC = true; break;
          case "i": e.item = readId(u, "i"); break;
          case "a": e.action = actionOf(u); break;
          case "t": {
            if (u.getNextFormat().getValueType() != ValueType.INTEGER)
              throw new IOException("field 't' (event time) has the wrong type");
            BigInteger t = u.unpackBigInteger();
            if (t.bitLength() > 63) throw new IOException("field 't' (event time) is above 2^63-1");
            e.ts = t.longValue();
            if (e.ts < 0) throw new IOException("field 't' (event time) is negative");
            hasT = true;
            break;
          }
          default: u.skipValue();
        }
      }
      if (u.hasNext()) throw new IOException("event message has trailing bytes after the map");
    } catch (org.msgpack.core.MessagePackException x) {
      throw new IOException("event message is malformed: " + x.getMessage());
    }
    if (!hasU) throw new IOException("field 'u' (user id) is missing");
    if (!hasC) throw new IOException("field 'c' (category id) is missing");
    if (!hasT) throw new IOException("field 't' (event time) is missing");
    return e;
  }

  static void packU64(MessageBufferPacker p, long v) throws IOException {
    if (v >= 0) p.packLong(v);
    else p.packBigInteger(new BigInteger(Long.toUnsignedString(v)));
  }

  static void packCats(MessageBufferPacker p, String k, long[] cat, float[] v, int n) throws IOException {
    p.packString(k);
    p.packArrayHeader(n);
    for (int i = 0; i < n; i++) {
      p.packArrayHeader(2);
      packU64(p, cat[i]);
      p.packFloat(v[i]);
    }
  }

  /** codec_encode_prediction: twelve keys in interestd's order, floats as float32. */
  static byte[] encode(long user, int part, long off, long ts, long emit, Model.Prediction r) throws IOException {
    MessageBufferPacker p = MessagePack.newDefaultBufferPacker();
    p.packMapHeader(12);
    p.packString("u"); packU64(p, user);
    p.packString("sp"); p.packLong(part);
    p.packString("so"); p.packLong(off);
    p.packString("t"); p.packLong(ts);
    p.packString("et"); p.packLong(emit);
    p.packString("n"); p.packLong(r.nEvents & 0xffffffffL);
    p.packString("fl"); p.packFloat(r.fluctuation);
    p.packString("sh"); p.packFloat(r.shift);
    packCats(p, "nx", r.nextCat, r.nextP, r.nNext);
    packCats(p, "lt", r.longCat, r.longP, r.nLong);
    packCats(p, "ri", r.riseCat, r.riseP, r.nRise);
    packCats(p, "fa", r.fallCat, r.fallP, r.nFall);
    return p.toByteArray();
  }

  /** The processor: one event, one state read and write, one prediction. */
  static final class Step implements Processor<byte[], byte[], byte[], byte[]> {
    final Model model;
    final Model.Prediction pred = new Model.Prediction();
    ProcessorContext<byte[], byte[]> ctx;
    KeyValueStore<Long, byte[]> store;

    Step(Model model) {
      this.model = model;
    }

    @Override
    public void init(ProcessorContext<byte[], byte[]> context) {
      ctx = context;
      store = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<byte[], byte[]> rec) {
      Event e;
      try {
        e = decode(rec.value());
      } catch (IOException x) {
        if (rejected.incrementAndGet() <= 10) System.err.println("streams-peer: rejected: " + x.getMessage());
        return;
      }
      Model.State s = model.deserialize(store.get(e.user));
      model.step(s, e.cat, e.action, e.ts, pred);
      store.put(e.user, model.serialize(s));
      var md = ctx.recordMetadata().orElseThrow();
      long now = System.currentTimeMillis();
      byte[] out;
      try {
        out = encode(e.user, md.partition(), md.offset(), e.ts, now, pred);
      } catch (IOException x) {
        throw new RuntimeException(x);
      }
      ctx.forward(new Record<>(Long.toUnsignedString(e.user).getBytes(StandardCharsets.US_ASCII), out, now));
      long n = processed.incrementAndGet();
      if (n % 100000 == 0) System.err.println("streams-peer: " + n + " events");
    }
  }

  public static void main(String[] args) throws Exception {
    if (args.length < 6) {
      System.err.println("usage: StreamsPeer BOOTSTRAP INPUT OUTPUT APPLICATION_ID STATE_DIR MODEL [KEY=VALUE...]");
      System.exit(2);
    }
    // the simple SLF4J binding logs INFO by default: warnings and errors only
    if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null)
      System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    Path modelPath = Paths.get(args[5]);
    // one model for the process, shared by the tasks (one copy of the weights in the caches;
    // Model.step is synchronized, uncontended with the one stream thread)
    Model model = new Model(modelPath);
    System.err.printf("streams-peer: model V=%d H=%d flags=0x%x state=%d B%n", model.V, model.H, model.flags,
        model.stateBytes());
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    for (int i = 6; i < args.length; i++) {
      int eq = args[i].indexOf('=');
      if (eq <= 0) throw new IllegalArgumentException("not KEY=VALUE: " + args[i]);
      p.put(args[i].substring(0, eq), args[i].substring(eq + 1));
    }
    StreamsBuilder b = new StreamsBuilder();
    // a persistent (RocksDB) store, logged to its changelog topic (the default), cached as the
    // DSL's stores are by default
    b.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(STORE), Serdes.Long(),
        Serdes.ByteArray()).withCachingEnabled());
    b.stream(args[1], Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
        .process(() -> new Step(model), STORE)
        .to(args[2], Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
    KafkaStreams ks = new KafkaStreams(b.build(), p);
    final long t0 = System.nanoTime();
    ks.setGlobalStateRestoreListener(new StateRestoreListener() {
      final AtomicLong restored = new AtomicLong();
      @Override
      public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
        System.err.printf("streams-peer: restoring %s from offset %d to %d%n", tp, start, end);
      }
      @Override
      public void onBatchRestored(TopicPartition tp, String store, long end, long n) {
        restored.addAndGet(n);
      }
      @Override
      public void onRestoreEnd(TopicPartition tp, String store, long n) {
        System.err.printf("streams-peer: restored %s: %d records, %.3f s after start (%d records so far)%n", tp, n,
            (System.nanoTime() - t0) / 1e9, restored.get());
      }
    });
    CountDownLatch done = new CountDownLatch(1);
    ks.setStateListener((now, before) -> {
      if (now == KafkaStreams.State.RUNNING)
        System.err.printf("streams-peer: RUNNING %.3f s after start%n", (System.nanoTime() - t0) / 1e9);
      if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) done.countDown();
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      ks.close();
      System.err.printf("streams-peer: closed; %d events, %d rejected, process CPU %.3f s%n", processed.get(),
          rejected.get(), ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
              .getProcessCpuTime() / 1e9);
      System.err.flush();
      Runtime.getRuntime().halt(0); // a clean close exits 0, not the JVM's 143 for SIGTERM
    }));
    ks.start();
    done.await();
  }
}
