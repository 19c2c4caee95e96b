package io.cachedit.diffusers.text;

import java.text.Normalizer;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Wan's {@code prompt_clean}: ftfy's text fixes, HTML entities decoded twice, whitespace runs to one
 * space, trimmed. Of ftfy's {@code fix_text} this applies the deterministic fixes (ligatures, full-
 * and half-width forms, curly quotes, line breaks, terminal escapes, control characters, NFC), looped
 * to a fixed point per line as ftfy does; its mojibake repair ({@code fix_encoding}, a heuristic over
 * byte re-decodings) is not applied, so text that is already mojibake stays as it is. HTML entities:
 * numeric references and the common named ones.
 */
public final class PromptCleaner {
  private PromptCleaner() {}

  private static final Map<Character, String> LIGATURES = Map.ofEntries(Map.entry('\u0132', "IJ"),
      Map.entry('\u0133', "ij"), Map.entry('\u0149', "\u02bcn"), Map.entry('\u01f1', "DZ"), Map.entry('\u01f2', "Dz"),
      Map.entry('\u01f3', "dz"), Map.entry('\u01c4', "D\u017d"), Map.entry('\u01c5', "D\u017e"),
      Map.entry('\u01c6', "d\u017e"), Map.entry('\u01c7', "LJ"), Map.entry('\u01c8', "Lj"), Map.entry('\u01c9', "lj"),
      Map.entry('\u01ca', "NJ"), Map.entry('\u01cb', "Nj"), Map.entry('\u01cc', "nj"), Map.entry('\ufb00', "ff"),
      Map.entry('\ufb01', "fi"), Map.entry('\ufb02', "fl"), Map.entry('\ufb03', "ffi"), Map.entry('\ufb04', "ffl"),
      Map.entry('\ufb05', "\u017ft"), Map.entry('\ufb06', "st"));
  private static final Map<String, String> ENTITIES = Map.ofEntries(Map.entry("amp", "&"), Map.entry("lt", "<"),
      Map.entry("gt", ">"), Map.entry("quot", "\""), Map.entry("apos", "'"), Map.entry("nbsp", "\u00a0"),
      Map.entry("copy", "\u00a9"), Map.entry("reg", "\u00ae"), Map.entry("trade", "\u2122"), Map.entry("hellip", "\u2026"),
      Map.entry("mdash", "\u2014"), Map.entry("ndash", "\u2013"), Map.entry("lsquo", "\u2018"), Map.entry("rsquo", "\u2019"),
      Map.entry("ldquo", "\u201c"), Map.entry("rdquo", "\u201d"), Map.entry("deg", "\u00b0"), Map.entry("times", "\u00d7"));
  private static final Pattern ENTITY = Pattern.compile("&(#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z]{2,8};)");
  private static final Pattern ANSI = Pattern.compile("\u001b\\[((?:\\d|;)*)([a-zA-Z])");
  private static final Pattern WHITESPACE = Pattern.compile("[\\s\\u001c-\\u001f\\u0085\\u00a0\\u1680\\u2000-\\u200a"
      + "\\u2028\\u2029\\u202f\\u205f\\u3000]+");

  /** {@code whitespace_clean(basic_clean(text))} of diffusers' Wan pipelines. */
  public static String clean(String text) {
    String t = fixText(text);
    t = unescapeHtml(unescapeHtml(t)).strip();
    return WHITESPACE.matcher(t).replaceAll(" ").strip();
  }

  /** ftfy's fixes (without mojibake repair), per line, to a fixed point. */
  static String fixText(String text) {
    StringBuilder out = new StringBuilder();
    boolean unescape = true;
    int pos = 0;
    while (pos < text.length()) {
      int nl = text.indexOf('\n', pos);
      int end = nl < 0 ? text.length() : nl + 1;
      String segment = text.substring(pos, end);
      if (segment.indexOf('<') >= 0) {
        unescape = false;  // ftfy: once a line looks like HTML, entities are left alone from there on
      }
      while (true) {
        String before = segment;
        if (unescape) {
          segment = unescapeHtml(segment);
        }
        segment = fixOnce(segment);
        if (segment.equals(before)) {
          break;
        }
      }
      out.append(segment);
      pos = end;
    }
    return out.toString();
  }

  private static String fixOnce(String s) {
    StringBuilder b = new StringBuilder(s.length());
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      String lig = LIGATURES.get(c);
      if (lig != null) {
        b.append(lig);
      } else if (c == '\u3000') {
        b.append(' ');
      } else if (c >= '\uff01' && c <= '\uffef') {
        String n = Normalizer.normalize(String.valueOf(c), Normalizer.Form.NFKC);
        b.append(n);
      } else if (c == '\u02bc' || (c >= '\u2018' && c <= '\u201b')) {
        b.append('\'');
      } else if (c >= '\u201c' && c <= '\u201f') {
        b.append('"');
      } else {
        b.append(c);
      }
    }
    String t = b.toString().replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
        .replace("\u0085", "\n");
    t = ANSI.matcher(t).replaceAll("");
    StringBuilder clean = new StringBuilder(t.length());
    for (int i = 0; i < t.length(); i++) {
      char c = t.charAt(i);
      boolean control = (c <= 0x08) || c == 0x0b || (c >= 0x0e && c <= 0x1f) || c == 0x7f || (c >= 0x206a && c <= 0x206f)
          || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffc);
      if (Character.isSurrogate(c) && !(Character.isHighSurrogate(c) && i + 1 < t.length()
          && Character.isLowSurrogate(t.charAt(i + 1))) && !(Character.isLowSurrogate(c) && i > 0
          && Character.isHighSurrogate(t.charAt(i - 1)))) {
        clean.append('\ufffd');
      } else if (!control) {
        clean.append(c);
      }
    }
    return Normalizer.normalize(clean, Normalizer.Form.NFC);
  }

  /** Numeric character references and the common named entities. */
  static String unescapeHtml(String s) {
    if (s.indexOf('&') < 0) {
      return s;
    }
    Matcher m = ENTITY.matcher(s);
    StringBuilder out = new StringBuilder();
    while (m.find()) {
      String body = m.group(1);
      String name = body.substring(0, body.length() - 1);
      String rep;
      if (name.startsWith("#")) {
        int cp = name.length() > 1 && (name.charAt(1) == 'x' || name.charAt(1) == 'X')
            ? Integer.parseInt(name.substring(2), 16) : Integer.parseInt(name.substring(1));
        rep = cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? "\ufffd" : new String(Character.toChars(cp));
      } else {
        rep = ENTITIES.get(name);
      }
      m.appendReplacement(out, Matcher.quoteReplacement(rep != null ? rep : m.group()));
    }
    m.appendTail(out);
    return out.toString();
  }
}
