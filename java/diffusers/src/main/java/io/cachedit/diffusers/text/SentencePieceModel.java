package io.cachedit.diffusers.text;

import io.cachedit.error.WeightLoadException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The parts of a SentencePiece {@code .model} file (a serialised {@code ModelProto}) that a tokenizer
 * needs: the pieces with their scores and types, the model type and special ids of the trainer spec,
 * and the normaliser's precompiled character map. Read field by field from the protobuf wire format;
 * the schema is SentencePiece's {@code sentencepiece_model.proto}, whose field numbers are stable.
 */
public record SentencePieceModel(List<Piece> pieces, int modelType, int unkId, int bosId, int eosId, int padId,
    byte[] precompiledCharsmap, boolean addDummyPrefix, boolean removeExtraWhitespaces) {
  /** {@code TrainerSpec.ModelType}: UNIGRAM = 1, BPE = 2, WORD = 3, CHAR = 4. */
  public static final int UNIGRAM = 1;

  /** {@code SentencePiece.Type}: NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6. */
  public static final int CONTROL = 3;
  public static final int USER_DEFINED = 4;

  /** One vocabulary entry. */
  public record Piece(String piece, float score, int type) {}

  /** Reads {@code file}; a malformed file is a {@link WeightLoadException} naming it and the byte offset. */
  public static SentencePieceModel read(Path file) {
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(file);
    } catch (IOException e) {
      throw new WeightLoadException("cannot read " + file + ": " + e.getMessage(), e);
    }
    try {
      return parse(ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN));
    } catch (RuntimeException e) {
      throw new WeightLoadException(file + " is not a SentencePiece model (" + e.getMessage() + "); expected the "
          + "spiece.model that came with the tokenizer", e);
    }
  }

  private static SentencePieceModel parse(ByteBuffer in) {
    List<Piece> pieces = new ArrayList<>();
    int[] trainer = {UNIGRAM, 0, 1, 2, -1};  // model_type, unk, bos, eos, pad: SentencePiece's defaults
    byte[] charsmap = null;
    boolean[] normalizer = {true, true};
    while (in.hasRemaining()) {
      long tag = varint(in);
      int field = (int) (tag >>> 3);
      int wire = (int) (tag & 7);
      if (field == 1 && wire == 2) {
        pieces.add(piece(sub(in)));
      } else if (field == 2 && wire == 2) {
        ByteBuffer t = sub(in);
        while (t.hasRemaining()) {
          long tt = varint(t);
          int f = (int) (tt >>> 3);
          int w = (int) (tt & 7);
          if (w == 0 && (f == 3 || (f >= 40 && f <= 43))) {
            int v = (int) varint(t);
            trainer[f == 3 ? 0 : f - 39] = v;
          } else {
            skip(t, w);
          }
        }
      } else if (field == 3 && wire == 2) {
        ByteBuffer n = sub(in);
        while (n.hasRemaining()) {
          long nt = varint(n);
          int f = (int) (nt >>> 3);
          int w = (int) (nt & 7);
          if (f == 2 && w == 2) {
            ByteBuffer b = sub(n);
            charsmap = new byte[b.remaining()];
            b.get(charsmap);
          } else if ((f == 3 || f == 4) && w == 0) {
            normalizer[f - 3] = varint(n) != 0;
          } else {
            skip(n, w);
          }
        }
      } else {
        skip(in, wire);
      }
    }
    if (pieces.isEmpty()) {
      throw new IllegalArgumentException("no pieces");
    }
    return new SentencePieceModel(List.copyOf(pieces), trainer[0], trainer[1], trainer[2], trainer[3], trainer[4],
        charsmap, normalizer[0], normalizer[1]);
  }

  private static Piece piece(ByteBuffer p) {
    String text = null;
    float score = 0;
    int type = 1;
    while (p.hasRemaining()) {
      long tag = varint(p);
      int f = (int) (tag >>> 3);
      int w = (int) (tag & 7);
      if (f == 1 && w == 2) {
        ByteBuffer b = sub(p);
        byte[] s = new byte[b.remaining()];
        b.get(s);
        text = new String(s, StandardCharsets.UTF_8);
      } else if (f == 2 && w == 5) {
        score = p.getFloat();
      } else if (f == 3 && w == 0) {
        type = (int) varint(p);
      } else {
        skip(p, w);
      }
    }
    if (text == null) {
      throw new IllegalArgumentException("a piece without text");
    }
    return new Piece(text, score, type);
  }

  private static long varint(ByteBuffer in) {
    long v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      byte b = in.get();
      v |= (long) (b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        return v;
      }
    }
    throw new IllegalArgumentException("varint longer than 10 bytes at offset " + in.position());
  }

  private static ByteBuffer sub(ByteBuffer in) {
    long len = varint(in);
    if (len < 0 || len > in.remaining()) {
      throw new IllegalArgumentException("field of " + len + " bytes at offset " + in.position() + " runs past the end");
    }
    ByteBuffer s = in.slice(in.position(), (int) len).order(ByteOrder.LITTLE_ENDIAN);
    in.position(in.position() + (int) len);
    return s;
  }

  private static void skip(ByteBuffer in, int wire) {
    switch (wire) {
      case 0 -> varint(in);
      case 1 -> in.position(in.position() + 8);
      case 2 -> sub(in);
      case 5 -> in.position(in.position() + 4);
      default -> throw new IllegalArgumentException("wire type " + wire + " at offset " + in.position());
    }
  }
}
