package interestd.peer;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.zip.CRC32;

/**
 * The Streams peer's model without Kafka: reads a record file of events (docs/FORMATS.md,
 * "Record files"), writes a record file of its predictions (emit time = event time, as
 * `interestctl replay --offline` does). For checking the port against interestd offline.
 * usage: Offline MODEL IN.rec OUT.rec
 */
public final class Offline {
  public static void main(String[] a) throws Exception {
    Model m = new Model(Paths.get(a[0]));
    HashMap<Long, Model.State> users = new HashMap<>();
    Model.Prediction pr = new Model.Prediction();
    long n = 0, bad = 0;
    java.lang.management.ThreadMXBean tmx = java.lang.management.ManagementFactory.getThreadMXBean();
    long cpu0 = tmx.getCurrentThreadCpuTime();
    try (DataInputStream in = new DataInputStream(new BufferedInputStream(new FileInputStream(a[1]), 1 << 16));
         OutputStream out = new BufferedOutputStream(new FileOutputStream(a[2]), 1 << 16)) {
      byte[] hdr = new byte[16];
      in.readFully(hdr);
      if (!new String(hdr, 0, 8, StandardCharsets.US_ASCII).equals("IXRECORD")) throw new IOException("not a record file");
      out.write(hdr);
      byte[] head = new byte[32];
      for (;;) {
        try {
          in.readFully(head);
        } catch (EOFException e) {
          break;
        }
        ByteBuffer h = ByteBuffer.wrap(head).order(ByteOrder.LITTLE_ENDIAN);
        int kl = h.getInt(0), vl = h.getInt(4), part = h.getInt(8);
        long off = h.getLong(12);
        byte[] key = new byte[kl], val = new byte[vl];
        in.readFully(key);
        in.readFully(val);
        in.readInt();
        StreamsPeer.Event e;
        try {
          e = StreamsPeer.decode(val);
        } catch (IOException x) {
          if (bad++ < 3) System.err.printf("offline: rejected partition %d offset %d: %s%n", part, off, x.getMessage());
          continue;
        }
        Model.State s = users.get(e.user);
        if (s == null) users.put(e.user, s = m.newState());
        m.step(s, e.cat, e.action, e.ts, pr);
        byte[] v = StreamsPeer.encode(e.user, part, off, e.ts, e.ts, pr);
        byte[] k = Long.toUnsignedString(e.user).getBytes(StandardCharsets.US_ASCII);
        write(out, k, v, part, off, e.ts);
        n++;
      }
    }
    double cpu = (tmx.getCurrentThreadCpuTime() - cpu0) / 1e9;
    System.err.printf("offline: %d predictions, %d rejected, %d users; %.1f us CPU per event (read, decode, "
        + "model, encode, write: no Kafka; this thread, JIT warm-up included)%n", n, bad, users.size(), cpu * 1e6 / n);
  }

  static void write(OutputStream out, byte[] k, byte[] v, int part, long off, long ts) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(36 + k.length + v.length).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(k.length).putInt(v.length).putInt(part).putLong(off).putLong(ts);
    CRC32 c = new CRC32();
    c.update(b.array(), 0, 28);
    b.putInt((int) c.getValue());
    b.put(k).put(v);
    c = new CRC32();
    c.update(b.array(), 0, 32 + k.length + v.length);
    b.putInt((int) c.getValue());
    out.write(b.array());
  }
}
