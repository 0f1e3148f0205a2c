//! G.711 µ-law and A-law companding (ITU-T G.711, bit-exact with the ITU-T G.191 reference code),
//! and the direct µ-law ↔ A-law conversions of G.711 Tables 3 and 4.
//!
//! The arithmetic comes from the `audio-codec-algorithms` crate: its decoders are 256-entry tables and
//! its encoders a handful of integer operations (sign, a leading-zero count, a shift), which is as fast
//! as a 64 KiB table without the cache footprint. The tests below check both laws against a transcription
//! of the G.191 `ulaw_compress`/`ulaw_expand`/`alaw_compress`/`alaw_expand` on all 65,536 inputs.
//!
//! Linear samples are `i16` in the usual 16-bit scale: G.191 reads them as left-justified 14-bit (µ-law)
//! or 13-bit (A-law) values, so the low 2 (µ) or 3 (A) bits are ignored by the encoder and decoded values
//! come back in the same 16-bit scale (µ-law full scale ±32 124, A-law ±32 256).

use audio_codec_algorithms::{
    convert_alaw_to_ulaw, convert_ulaw_to_alaw, decode_alaw, decode_ulaw, encode_alaw, encode_ulaw,
};

/// A G.711 companding law, as negotiated in SDP (`PCMU/8000` or `PCMA/8000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law (PCMU), North America and Japan.
    Ulaw,
    /// A-law (PCMA), the rest of the world.
    Alaw,
}

impl Law {
    /// The static RTP payload type (RFC 3551 §6): 0 for PCMU, 8 for PCMA.
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    /// Compresses one linear sample to its G.711 code (as sent on the wire).
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Ulaw => encode_ulaw(sample),
            Law::Alaw => encode_alaw(sample),
        }
    }

    /// Expands one G.711 code to a linear sample. µ-law 0x7F and 0xFF (the two zeros) both give 0.
    #[inline]
    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Law::Ulaw => decode_ulaw(byte),
            Law::Alaw => decode_alaw(byte),
        }
    }

    /// Compresses `pcm` and appends the codes to `out`.
    pub fn encode_into(self, pcm: &[i16], out: &mut Vec<u8>) {
        match self {
            Law::Ulaw => out.extend(pcm.iter().map(|&s| encode_ulaw(s))),
            Law::Alaw => out.extend(pcm.iter().map(|&s| encode_alaw(s))),
        }
    }

    /// Expands `payload` and appends the samples to `out`.
    pub fn decode_into(self, payload: &[u8], out: &mut Vec<i16>) {
        match self {
            Law::Ulaw => out.extend(payload.iter().map(|&b| decode_ulaw(b))),
            Law::Alaw => out.extend(payload.iter().map(|&b| decode_alaw(b))),
        }
    }

    /// Converts a payload in this law to the law `to` and appends it to `out` (a copy when the laws are
    /// the same). Uses the G.711 conversion tables (Tables 3 and 4), not decode-then-encode: they keep
    /// µ→A→µ and A→µ→A round trips transparent except for the codes G.711 lists.
    pub fn transcode(self, to: Law, payload: &[u8], out: &mut Vec<u8>) {
        match (self, to) {
            (Law::Ulaw, Law::Alaw) => out.extend(payload.iter().map(|&b| convert_ulaw_to_alaw(b))),
            (Law::Alaw, Law::Ulaw) => out.extend(payload.iter().map(|&b| convert_alaw_to_ulaw(b))),
            (Law::Ulaw, Law::Ulaw) | (Law::Alaw, Law::Alaw) => out.extend_from_slice(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The oracles are transcriptions of ITU-T G.191 (STL) `g711.c` and, for the law-to-law tables, of
    //! the Sun `g711.c` tables "copied from CCITT G.711" (Tables 3 and 4). Some copies carry a 1994
    //! "correction" (µ 80 → A 80, A 80 → µ 80) that makes those two entries nearest-value; G.711 itself
    //! maps µ 80 → A 81 and A 80 → µ 79, which its note on A→µ→A double conversion confirms (A-law
    //! value 80 is listed as changed), so the tables below are the uncorrected ones.
    //! Mapping: G.191 takes the `short` sample as is (14-bit left-justified for µ-law: it does the `>> 2`
    //! itself; 13-bit for A-law: `>> 4` after the 1's complement) and expands to the same left-justified
    //! scale, so an `i16` goes in and comes out with no shift on our side.

    use super::Law;

    /// G.191 `alaw_compress` for one sample.
    fn g191_alaw_compress(lin: i16) -> u8 {
        let mut ix: i16 = if lin < 0 { (!lin) >> 4 } else { lin >> 4 };
        if ix > 15 {
            let mut iexp: i16 = 1;
            while ix > 16 + 15 {
                ix >>= 1;
                iexp += 1;
            }
            ix -= 16;
            ix += iexp << 4;
        }
        if lin >= 0 {
            ix |= 0x0080;
        }
        (ix ^ 0x0055) as u8
    }

    /// G.191 `alaw_expand` for one code.
    fn g191_alaw_expand(log: u8) -> i16 {
        let mut ix = i16::from(log) ^ 0x0055;
        ix &= 0x007F;
        let iexp = ix >> 4;
        let mut mant = ix & 0x000F;
        if iexp > 0 {
            mant += 16;
        }
        mant = (mant << 4) + 0x0008;
        if iexp > 1 {
            mant <<= iexp - 1;
        }
        if log > 127 { mant } else { -mant }
    }

    /// G.191 `ulaw_compress` for one sample.
    fn g191_ulaw_compress(lin: i16) -> u8 {
        let mut absno: i16 = if lin < 0 {
            ((!lin) >> 2) + 33
        } else {
            (lin >> 2) + 33
        };
        if absno > 0x1FFF {
            absno = 0x1FFF;
        }
        let mut i = absno >> 6;
        let mut segno: i16 = 1;
        while i != 0 {
            segno += 1;
            i >>= 1;
        }
        let high_nibble = 0x0008 - segno;
        let low_nibble = 0x000F - ((absno >> segno) & 0x000F);
        let mut log = (high_nibble << 4) | low_nibble;
        if lin >= 0 {
            log |= 0x0080;
        }
        log as u8
    }

    /// G.191 `ulaw_expand` for one code.
    fn g191_ulaw_expand(log: u8) -> i16 {
        let sign: i32 = if log < 0x80 { -1 } else { 1 };
        let mantissa = !i32::from(log);
        let exponent = (mantissa >> 4) & 0x0007;
        let segment = exponent + 1;
        let mantissa = mantissa & 0x000F;
        let step = 4 << segment;
        let value = sign * ((0x0080 << exponent) + step * mantissa + step / 2 - 4 * 33);
        value as i16
    }

    /// Sun `g711.c` `_u2a`: G.711 Table 3, µ-law value number 0..=127 → A-law value number 1..=128.
    const U2A: [u8; 128] = [
        1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
        20, 21, 22, 23, 24, 25, 27, 29, 31, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 48,
        49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 64, 65, 66, 67, 68, 69, 70, 71, 72,
        73, 74, 75, 76, 77, 78, 79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96,
        97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115,
        116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128,
    ];

    /// Sun `g711.c` `_a2u`: G.711 Table 4, A-law value number 1..=128 → µ-law value number 0..=127.
    const A2U: [u8; 128] = [
        1, 3, 5, 7, 9, 11, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
        32, 32, 33, 33, 34, 34, 35, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 48, 49,
        49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 64, 65, 66, 67, 68, 69, 70,
        71, 72, 73, 74, 75, 76, 77, 78, 79, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92,
        93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
        112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
    ];

    fn sun_ulaw2alaw(u: u8) -> u8 {
        if u & 0x80 != 0 {
            0xD5 ^ (U2A[usize::from(0xFF ^ u)] - 1)
        } else {
            0x55 ^ (U2A[usize::from(0x7F ^ u)] - 1)
        }
    }

    fn sun_alaw2ulaw(a: u8) -> u8 {
        if a & 0x80 != 0 {
            0xFF ^ A2U[usize::from(a ^ 0xD5)]
        } else {
            0x7F ^ A2U[usize::from(a ^ 0x55)]
        }
    }

    const LAWS: [Law; 2] = [Law::Ulaw, Law::Alaw];

    fn oracle_compress(law: Law, s: i16) -> u8 {
        match law {
            Law::Ulaw => g191_ulaw_compress(s),
            Law::Alaw => g191_alaw_compress(s),
        }
    }

    fn oracle_expand(law: Law, b: u8) -> i16 {
        match law {
            Law::Ulaw => g191_ulaw_expand(b),
            Law::Alaw => g191_alaw_expand(b),
        }
    }

    #[test]
    fn encode_matches_g191_on_all_65536_inputs() {
        for law in LAWS {
            for s in i16::MIN..=i16::MAX {
                assert_eq!(
                    law.encode(s),
                    oracle_compress(law, s),
                    "{law:?} encode({s})"
                );
            }
        }
    }

    #[test]
    fn decode_matches_g191_on_all_256_codes() {
        for law in LAWS {
            for b in 0..=u8::MAX {
                assert_eq!(
                    law.decode(b),
                    oracle_expand(law, b),
                    "{law:?} decode({b:#04x})"
                );
            }
        }
    }

    #[test]
    fn both_mulaw_zero_codes_decode_to_zero() {
        assert_eq!(Law::Ulaw.decode(0x7F), 0);
        assert_eq!(Law::Ulaw.decode(0xFF), 0);
        assert_eq!(Law::Ulaw.encode(0), 0xFF);
        assert_eq!(
            Law::Ulaw.encode(-1),
            0x7F,
            "G.191 uses 1's complement: -1 is negative zero"
        );
        // A-law has no zero code: the smallest steps are ±8.
        assert_eq!(Law::Alaw.encode(0), 0xD5);
        assert_eq!(Law::Alaw.decode(0xD5), 8);
        assert_eq!(Law::Alaw.decode(0x55), -8);
    }

    #[test]
    fn full_scale_codes() {
        assert_eq!(Law::Ulaw.decode(Law::Ulaw.encode(i16::MAX)), 32_124);
        assert_eq!(Law::Ulaw.decode(Law::Ulaw.encode(i16::MIN)), -32_124);
        assert_eq!(Law::Alaw.decode(Law::Alaw.encode(i16::MAX)), 32_256);
        assert_eq!(Law::Alaw.decode(Law::Alaw.encode(i16::MIN)), -32_256);
    }

    #[test]
    fn code_round_trip_is_identity_except_negative_mulaw_zero() {
        for law in LAWS {
            for b in 0..=u8::MAX {
                let expected = if law == Law::Ulaw && b == 0x7F {
                    0xFF
                } else {
                    b
                };
                assert_eq!(law.encode(law.decode(b)), expected, "{law:?} {b:#04x}");
            }
        }
    }

    #[test]
    fn sample_round_trip_is_idempotent_and_within_half_a_step() {
        for law in LAWS {
            for s in i16::MIN..=i16::MAX {
                let once = law.decode(law.encode(s));
                assert_eq!(law.decode(law.encode(once)), once, "{law:?} {s}");
                // The largest step of either law is 1024 in 16-bit scale; clipping aside, the error is
                // at most half a step plus the ignored low bits.
                let err = (i32::from(s) - i32::from(once)).abs();
                assert!(
                    err <= 512 + 8 || i32::from(s).abs() > 32_000,
                    "{law:?} {s} -> {once}"
                );
            }
        }
    }

    #[test]
    fn encode_into_and_decode_into_append() {
        for law in LAWS {
            let pcm: Vec<i16> = (-400..400).map(|i| i * 80).collect();
            let mut bytes = vec![0xAA];
            law.encode_into(&pcm, &mut bytes);
            assert_eq!(bytes.len(), 1 + pcm.len());
            assert_eq!(bytes[0], 0xAA);
            for (s, b) in pcm.iter().zip(&bytes[1..]) {
                assert_eq!(*b, law.encode(*s));
            }
            let mut back = vec![7];
            law.decode_into(&bytes[1..], &mut back);
            assert_eq!(back.len(), 1 + pcm.len());
            assert_eq!(back[0], 7);
            for (b, s) in bytes[1..].iter().zip(&back[1..]) {
                assert_eq!(*s, law.decode(*b));
            }
        }
    }

    #[test]
    fn transcode_matches_g711_tables() {
        let all: Vec<u8> = (0..=u8::MAX).collect();
        let mut a = Vec::new();
        Law::Ulaw.transcode(Law::Alaw, &all, &mut a);
        let mut u = Vec::new();
        Law::Alaw.transcode(Law::Ulaw, &all, &mut u);
        for b in 0..=u8::MAX {
            let i = usize::from(b);
            assert_eq!(a[i], sun_ulaw2alaw(b), "µ→A {b:#04x}");
            assert_eq!(u[i], sun_alaw2ulaw(b), "A→µ {b:#04x}");
        }
    }

    /// G.711 notes to Tables 3 and 4: after µ→A→µ only µ-law value numbers 0, 2, …, 14 change (each
    /// +1); after A→µ→A only A-law value numbers 26, 28, 30, 32, 45, 47, 63 and 80 change. Either way
    /// only the last bit of the octet moves.
    #[test]
    fn double_conversion_follows_the_g711_notes() {
        for u in 0..=u8::MAX {
            let number = (u ^ 0xFF) & 0x7F; // µ-law value number
            let mut a = Vec::new();
            Law::Ulaw.transcode(Law::Alaw, &[u], &mut a);
            let mut back = Vec::new();
            Law::Alaw.transcode(Law::Ulaw, &a, &mut back);
            let changed = number <= 14 && number % 2 == 0;
            assert_eq!(
                back[0],
                if changed { u ^ 1 } else { u },
                "µ {u:#04x} (number {number})"
            );
        }
        for a in 0..=u8::MAX {
            let number = ((a ^ 0xD5) & 0x7F) + 1; // A-law value number
            let mut u = Vec::new();
            Law::Alaw.transcode(Law::Ulaw, &[a], &mut u);
            let mut back = Vec::new();
            Law::Ulaw.transcode(Law::Alaw, &u, &mut back);
            let changed = [26, 28, 30, 32, 45, 47, 63, 80].contains(&number);
            assert_eq!(
                back[0] ^ a,
                u8::from(changed),
                "A {a:#04x} (number {number})"
            );
        }
    }

    #[test]
    fn transcode_stays_close_to_the_decoded_value() {
        for (from, to) in [(Law::Ulaw, Law::Alaw), (Law::Alaw, Law::Ulaw)] {
            for b in 0..=u8::MAX {
                let mut out = Vec::new();
                from.transcode(to, &[b], &mut out);
                let before = i32::from(from.decode(b));
                let after = i32::from(to.decode(out[0]));
                // Within one step of the coarser law at that level (G.711 tables round to a neighbour).
                let tolerance = (before.abs() / 8).max(16);
                assert!(
                    (before - after).abs() <= tolerance,
                    "{from:?}->{to:?} {b:#04x}: {before} vs {after}"
                );
            }
        }
    }

    #[test]
    fn transcode_same_law_copies_and_appends() {
        let payload = [0u8, 1, 0x7F, 0xFF, 0x55, 0xD5];
        for law in LAWS {
            let mut out = vec![9];
            law.transcode(law, &payload, &mut out);
            assert_eq!(out, [9, 0, 1, 0x7F, 0xFF, 0x55, 0xD5]);
        }
    }

    #[test]
    fn payload_types_follow_rfc_3551() {
        assert_eq!(Law::Ulaw.payload_type(), 0);
        assert_eq!(Law::Alaw.payload_type(), 8);
    }
}
