//! Unit tests of the public decoding API.

use bibgate_marc8::{Charset, Decoder, Problem, ProblemKind, decode, decode_lossy, is_plain_ascii};

/// Raw (not normalised) decoder output and problems.
fn raw(bytes: &[u8]) -> (String, Vec<Problem>) {
    let mut d = Decoder::new();
    let mut out = String::new();
    d.decode_into(bytes, &mut out);
    (out, d.problems().to_vec())
}

fn kinds(problems: &[Problem]) -> Vec<(usize, ProblemKind)> {
    problems
        .iter()
        .map(|p| (p.offset, p.kind.clone()))
        .collect()
}

#[test]
fn ascii_is_identity() {
    assert_eq!(decode(b"Hello, world ~{}|").unwrap(), "Hello, world ~{}|");
    assert_eq!(decode(b"").unwrap(), "");
}

#[test]
fn combining_mark_moves_after_its_base() {
    // MARC-8: acute (0xE2) precedes "e"; Unicode: e + U+0301, NFC é.
    assert_eq!(raw(b"caf\xe2e").0, "cafe\u{301}");
    assert_eq!(decode(b"caf\xe2e").unwrap(), "caf\u{e9}");
    // Several marks keep their MARC-8 order after the base.
    assert_eq!(raw(b"\xe3\xe2a").0, "a\u{302}\u{301}");
    // Marks attach to a space too, and to a base from another set.
    assert_eq!(raw(b"\xe4 ").0, " \u{303}");
    assert_eq!(raw(b"\xe2\x1b(NA\x1b(B").0, "\u{430}\u{301}");
}

#[test]
fn ansel_spacing_characters() {
    assert_eq!(
        decode(b"\xa1\xb1\xc3\xc7\xc8").unwrap(),
        "\u{141}\u{142}\u{a9}\u{df}\u{20ac}"
    );
}

#[test]
fn ligature_and_double_tilde_halves_follow_lc() {
    // EB t EC s -> t U+0361 s (the second half maps to nothing).
    assert_eq!(raw(b"\xebt\xecs").0, "t\u{361}s");
    assert_eq!(raw(b"\xfan\xfbg").0, "n\u{360}g");
    assert!(raw(b"\xebt\xecs").1.is_empty());
}

#[test]
fn g0_escapes_switch_sets_and_back() {
    assert_eq!(decode(b"\x1b(NAa\x1b(Bz").unwrap(), "\u{430}\u{410}z");
    assert_eq!(decode(b"\x1b(2`\x1b(B").unwrap(), "\u{5d0}");
    assert_eq!(decode(b"\x1b(SAa\x1b(B").unwrap(), "\u{391}\u{3b1}");
    assert_eq!(decode(b"\x1b(3G\x1b(B").unwrap(), "\u{627}");
    assert_eq!(decode(b"\x1b(4!\x1b(B").unwrap(), "\u{6fd}");
    assert_eq!(decode(b"\x1b(QJ\x1b(B").unwrap(), "\u{45a}");
    // `ESC , F` designates G0 as well.
    assert_eq!(decode(b"\x1b,NA\x1b,B").unwrap(), "\u{430}");
}

#[test]
fn technique_one_escapes() {
    // Subscript, superscript and Greek symbols, each ended by ESC s.
    assert_eq!(decode(b"H\x1bb2\x1bsO").unwrap(), "H\u{2082}O");
    assert_eq!(decode(b"x\x1bp2\x1bs").unwrap(), "x\u{b2}");
    assert_eq!(decode(b"\x1bga\x1bs rays").unwrap(), "\u{3b1} rays");
}

#[test]
fn g1_designations_use_high_bytes() {
    // Basic Cyrillic as G1: 0xC1 is the G1 form of 0x41.
    assert_eq!(decode(b"\x1b)N\xc1\xe1").unwrap(), "\u{430}\u{410}");
    assert_eq!(decode(b"\x1b-N\xc1").unwrap(), "\u{430}");
    // Extended Cyrillic as G1 alongside ASCII G0.
    assert_eq!(decode(b"a\x1b)Q\xca").unwrap(), "a\u{45a}");
    // Back to ANSEL with the full `ESC ) ! E` form and the short one.
    assert_eq!(decode(b"\x1b)N\x1b)!E\xe2e").unwrap(), "\u{e9}");
    assert_eq!(decode(b"\x1b)N\x1b)E\xe2e").unwrap(), "\u{e9}");
}

#[test]
fn eacc_three_byte_characters() {
    assert_eq!(decode(b"\x1b$1!0d\x1b(B").unwrap(), "\u{4eba}");
    assert_eq!(
        decode(b"\x1b$1!0d!0d\x1b(B ok").unwrap(),
        "\u{4eba}\u{4eba} ok"
    );
    // `ESC $ , 1` and EACC as G1 (`ESC $ ) 1`) with high bytes.
    assert_eq!(decode(b"\x1b$,1!0d\x1b(B").unwrap(), "\u{4eba}");
    assert_eq!(decode(b"\x1b$)1\xa1\xb0\xe4").unwrap(), "\u{4eba}");
    // A space byte stays a single-byte space inside EACC.
    assert_eq!(decode(b"\x1b$1!0d !0d\x1b(B").unwrap(), "\u{4eba} \u{4eba}");
    // Supplementary-plane mapping from the LC table.
    assert_eq!(decode(b"\x1b$1!uY\x1b(B").unwrap(), "\u{212c4}");
}

#[test]
fn state_persists_across_calls_and_offsets_accumulate() {
    let mut d = Decoder::new();
    let mut out = String::new();
    d.decode_into(b"\x1b(N", &mut out);
    assert_eq!(
        d.working_sets(),
        (Charset::BasicCyrillic, Charset::ExtendedLatin)
    );
    d.decode_into(b"A", &mut out);
    assert_eq!(out, "\u{430}");
    d.decode_into(b"\x1b(Bab\x80", &mut out);
    assert_eq!(out, "\u{430}ab\u{fffd}");
    assert_eq!(
        kinds(d.problems()),
        vec![(9, ProblemKind::UnmappedByte { byte: 0x80 })]
    );
    d.reset();
    assert!(d.problems().is_empty());
    assert_eq!(
        d.working_sets(),
        (Charset::BasicLatin, Charset::ExtendedLatin)
    );
    let mut out = String::new();
    d.decode_into(b"\x80", &mut out);
    assert_eq!(d.problems()[0].offset, 0);
}

#[test]
fn unknown_escape_is_reported_and_sets_are_kept() {
    let (out, problems) = raw(b"ab\x1b(Xcd");
    assert_eq!(out, "ab\u{fffd}cd");
    assert_eq!(
        kinds(&problems),
        vec![(
            2,
            ProblemKind::UnknownEscape {
                sequence: b"\x1b(X".to_vec()
            }
        )]
    );
    assert_eq!(
        problems[0].to_string(),
        "at offset 2: unknown escape sequence ESC ( X"
    );
    // A non-graphic after ESC is not swallowed.
    let (out, problems) = raw(b"a\x1b\x1fb");
    assert_eq!(out, "a\u{fffd}\x1fb");
    assert_eq!(problems.len(), 1);
}

#[test]
fn truncated_escape_at_end() {
    let (out, problems) = raw(b"abc\x1b(");
    assert_eq!(out, "abc\u{fffd}");
    assert_eq!(kinds(&problems), vec![(3, ProblemKind::TruncatedEscape)]);
    let (out, problems) = raw(b"\x1b");
    assert_eq!(out, "\u{fffd}");
    assert_eq!(kinds(&problems), vec![(0, ProblemKind::TruncatedEscape)]);
}

#[test]
fn truncated_multibyte() {
    let (out, problems) = raw(b"\x1b$1!0");
    assert_eq!(out, "\u{fffd}");
    assert_eq!(
        kinds(&problems),
        vec![(3, ProblemKind::TruncatedMultibyte { set: Charset::Eacc })]
    );
    // Cut short by an escape: the escape still applies.
    let (out, problems) = raw(b"\x1b$1!0\x1b(Bx");
    assert_eq!(out, "\u{fffd}x");
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].to_string(),
        "at offset 3: incomplete three-byte east asian (EACC) character"
    );
}

#[test]
fn unmapped_codes() {
    let (out, problems) = raw(b"\x1b$1~~~\x1b(B");
    assert_eq!(out, "\u{fffd}");
    assert_eq!(
        kinds(&problems),
        vec![(
            3,
            ProblemKind::UnmappedCode {
                set: Charset::Eacc,
                code: 0x7e7e7e
            }
        )]
    );
    // 0xAF is unassigned in ANSEL.
    let (out, problems) = raw(b"x\xafy");
    assert_eq!(out, "x\u{fffd}y");
    assert_eq!(
        problems[0].to_string(),
        "at offset 1: code 0xaf is not defined in the extended latin (ANSEL) character set"
    );
    for b in [0x7f_u8, 0x80, 0x9c, 0xa0, 0xff] {
        let (out, problems) = raw(&[b]);
        assert_eq!(out, "\u{fffd}");
        assert_eq!(
            kinds(&problems),
            vec![(0, ProblemKind::UnmappedByte { byte: b })]
        );
    }
    assert_eq!(
        raw(b"ab\x9c").1[0].to_string(),
        "at offset 2: byte 0x9c has no MARC-8 meaning"
    );
}

#[test]
fn dangling_combining_marks_are_dropped_and_reported() {
    let (out, problems) = raw(b"abc\xe2");
    assert_eq!(out, "abc");
    assert_eq!(
        kinds(&problems),
        vec![(3, ProblemKind::DanglingCombining { count: 1 })]
    );
    // Before a subfield delimiter too.
    let (out, problems) = raw(b"a\xe2\xe3\x1fbc");
    assert_eq!(out, "a\x1fbc");
    assert_eq!(
        kinds(&problems),
        vec![(1, ProblemKind::DanglingCombining { count: 2 })]
    );
    assert!(decode(b"abc\xe2").is_err());
}

#[test]
fn controls_pass_through() {
    let bytes = b"\x1fa245\x1e\x1d\x00\n";
    assert_eq!(raw(bytes).0.as_bytes(), bytes);
    assert_eq!(decode(bytes).unwrap().as_bytes(), bytes);
    // Also when another G0 set is in force.
    assert_eq!(raw(b"\x1b(NA\x1fB").0, "\u{430}\x1f\u{431}");
}

#[test]
fn c1_controls_follow_lc() {
    // NSB/NSE (non-filing) and ZWJ/ZWNJ.
    assert_eq!(raw(b"\x88The \x89end").0, "\u{98}The \u{9c}end");
    assert_eq!(raw(b"a\x8db\x8ec").0, "a\u{200d}b\u{200c}c");
}

#[test]
fn decode_returns_first_problem() {
    let err = decode(b"a\x80b\xff").unwrap_err();
    assert_eq!(err.offset, 1);
    let (s, problems) = decode_lossy(b"a\x80b\xff");
    assert_eq!(s, "a\u{fffd}b\u{fffd}");
    assert_eq!(problems.len(), 2);
}

#[test]
fn plain_ascii_check() {
    assert!(is_plain_ascii(b""));
    assert!(is_plain_ascii(b"abc \x1f\x1e\x1d"));
    assert!(!is_plain_ascii(b"a\x1b(B"));
    assert!(!is_plain_ascii(b"caf\xe2e"));
    assert!(!is_plain_ascii(b"\x7f"));
}

/// Small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn never_panics_on_arbitrary_bytes() {
    // Half fully random bytes, half drawn from bytes that drive the escape,
    // multibyte and combining paths.
    const INTERESTING: &[u8] =
        b"\x1b\x1b$(),-!1BENQ2345Sgbps!0d~ \x1f\xe2\xeb\xec\xa1\xc1\x88\x80\xa0\xff\x7f";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let len = (rng.next() % 40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = rng.next();
                if round % 2 == 0 {
                    (r >> 24) as u8
                } else {
                    INTERESTING[(r >> 24) as usize % INTERESTING.len()]
                }
            })
            .collect();
        let (s, problems) = decode_lossy(&bytes);
        assert!(
            problems.iter().all(|p| p.offset < bytes.len()),
            "{bytes:02x?}"
        );
        assert_eq!(decode(&bytes).is_ok(), problems.is_empty());
        if is_plain_ascii(&bytes) {
            assert_eq!(s.as_bytes(), &bytes[..]);
        }
        // Feeding in two pieces never panics either.
        let mut d = Decoder::new();
        let mut out = String::new();
        let cut = bytes.len() / 2;
        d.decode_into(&bytes[..cut], &mut out);
        d.decode_into(&bytes[cut..], &mut out);
        assert!(d.problems().iter().all(|p| p.offset < bytes.len()));
    }
}
