//! SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), written once for the
//! signed frames (docs/PROTOCOL.md, "Signed frames"): std has neither, and
//! the card allows no crates. Checked against the FIPS 180-4 examples and
//! all RFC 4231 test cases below.

/// Round constants: the first 32 bits of the fractional parts of the cube
/// roots of the first 64 primes.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

pub const BLOCK_LEN: usize = 64;
pub const DIGEST_LEN: usize = 32;

/// One 64-byte block into `state`: with the CPU's SHA instructions where
/// it has them (x86-64 since about 2017), about four times faster, which
/// matters for a tag per datagram; in plain Rust otherwise.
fn compress(state: &mut [u32; 8], block: &[u8; BLOCK_LEN]) {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: the CPU has the instructions `x86::compress` uses.
        unsafe { x86::compress(state, block) };
        return;
    }
    compress_portable(state, block);
}

/// The rounds are written out eight at a time with the working variables
/// renamed instead of shuffled, so they stay in registers.
fn compress_portable(state: &mut [u32; 8], block: &[u8; BLOCK_LEN]) {
    let mut w = [0u32; 64];
    for (i, word) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    macro_rules! round {
        ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {
            let s1 = $e.rotate_right(6) ^ $e.rotate_right(11) ^ $e.rotate_right(25);
            let ch = ($e & $f) ^ (!$e & $g);
            let t1 = $h.wrapping_add(s1).wrapping_add(ch).wrapping_add($kw);
            let s0 = $a.rotate_right(2) ^ $a.rotate_right(13) ^ $a.rotate_right(22);
            let maj = ($a & $b) ^ ($a & $c) ^ ($b & $c);
            $d = $d.wrapping_add(t1);
            $h = t1.wrapping_add(s0).wrapping_add(maj);
        };
    }
    let mut kw = [0u32; 64];
    for ((kw, k), w) in kw.iter_mut().zip(K).zip(w) {
        *kw = k.wrapping_add(w);
    }
    for kw in kw.chunks_exact(8) {
        let kw: &[u32; 8] = kw.try_into().expect("8 words");
        round!(a, b, c, d, e, f, g, h, kw[0]);
        round!(h, a, b, c, d, e, f, g, kw[1]);
        round!(g, h, a, b, c, d, e, f, kw[2]);
        round!(f, g, h, a, b, c, d, e, kw[3]);
        round!(e, f, g, h, a, b, c, d, kw[4]);
        round!(d, e, f, g, h, a, b, c, kw[5]);
        round!(c, d, e, f, g, h, a, b, kw[6]);
        round!(b, c, d, e, f, g, h, a, kw[7]);
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

/// SHA-256 with the SHA extensions (SHA-NI), after Intel's reference
/// code: each `_mm_sha256rnds2_epu32` does two rounds, the message
/// schedule four words per `msg1`/`msg2` pair.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BLOCK_LEN, K};
    use std::arch::x86_64::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    /// 0: not asked yet, 1: no, 2: yes.
    static AVAILABLE: AtomicU8 = AtomicU8::new(0);

    /// CPUID asked once, by hand: `is_x86_feature_detected!` brings std's
    /// whole feature cache (1.6 KB) into binaries that must stay small.
    /// These are user-mode instructions on XMM registers, which every
    /// x86-64 OS saves, so no XGETBV check is needed.
    pub fn available() -> bool {
        match AVAILABLE.load(Ordering::Relaxed) {
            0 => {
                // Leaf 7 is asked only if the CPU has it.
                let leaf1 = __cpuid(1);
                let ssse3_sse41 = leaf1.ecx & (1 << 9) != 0 && leaf1.ecx & (1 << 19) != 0;
                let yes =
                    ssse3_sse41 && __cpuid(0).eax >= 7 && __cpuid_count(7, 0).ebx & (1 << 29) != 0;
                AVAILABLE.store(1 + yes as u8, Ordering::Relaxed);
                yes
            }
            known => known == 2,
        }
    }

    /// # Safety
    /// Only where `available()`.
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    pub unsafe fn compress(state: &mut [u32; 8], block: &[u8; BLOCK_LEN]) {
        // Big-endian words: reverse the bytes of each 32-bit lane.
        let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let state_ptr = state.as_mut_ptr() as *mut __m128i;
        // The instructions want the state as ABEF and CDGH.
        let dcba = _mm_loadu_si128(state_ptr);
        let hgfe = _mm_loadu_si128(state_ptr.add(1));
        let cdab = _mm_shuffle_epi32(dcba, 0xb1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1b);
        let mut abef = _mm_alignr_epi8(cdab, efgh, 8);
        let mut cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);
        let (abef_before, cdgh_before) = (abef, cdgh);

        let data = block.as_ptr() as *const __m128i;
        let mut w = [_mm_setzero_si128(); 4];
        for (i, w) in w.iter_mut().enumerate() {
            *w = _mm_shuffle_epi8(_mm_loadu_si128(data.add(i)), swap);
        }
        for i in 0..16 {
            if i >= 4 {
                // W[t..t+4] from W[t-16..], W[t-12..], W[t-8..], W[t-4..].
                let (w0, w1, w2, w3) = (w[i % 4], w[(i + 1) % 4], w[(i + 2) % 4], w[(i + 3) % 4]);
                let sum = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
                w[i % 4] = _mm_sha256msg2_epu32(sum, w3);
            }
            let k = _mm_loadu_si128(K.as_ptr().add(4 * i) as *const __m128i);
            let wk = _mm_add_epi32(w[i % 4], k);
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0e));
        }
        abef = _mm_add_epi32(abef, abef_before);
        cdgh = _mm_add_epi32(cdgh, cdgh_before);

        let feba = _mm_shuffle_epi32(abef, 0x1b);
        let dchg = _mm_shuffle_epi32(cdgh, 0xb1);
        _mm_storeu_si128(state_ptr, _mm_blend_epi16(feba, dchg, 0xf0));
        _mm_storeu_si128(state_ptr.add(1), _mm_alignr_epi8(dchg, feba, 8));
    }
}

/// True if this CPU's SHA instructions are used (for reports).
pub fn accelerated() -> bool {
    #[cfg(target_arch = "x86_64")]
    return x86::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// An incremental SHA-256: `update` any number of times, then `finish`.
#[derive(Clone)]
pub struct Sha256 {
    state: [u32; 8],
    block: [u8; BLOCK_LEN],
    /// Bytes waiting in `block`.
    pending: usize,
    /// Bytes hashed so far, for the length in the padding.
    total: u64,
}

impl Default for Sha256 {
    fn default() -> Sha256 {
        Sha256::new()
    }
}

impl Sha256 {
    pub fn new() -> Sha256 {
        Sha256 {
            state: INITIAL,
            block: [0; BLOCK_LEN],
            pending: 0,
            total: 0,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.pending > 0 {
            let take = data.len().min(BLOCK_LEN - self.pending);
            self.block[self.pending..self.pending + take].copy_from_slice(&data[..take]);
            self.pending += take;
            data = &data[take..];
            if self.pending < BLOCK_LEN {
                return;
            }
            compress(&mut self.state, &self.block);
            self.pending = 0;
        }
        let mut blocks = data.chunks_exact(BLOCK_LEN);
        for block in &mut blocks {
            compress(&mut self.state, block.try_into().expect("64 bytes"));
        }
        let rest = blocks.remainder();
        self.block[..rest.len()].copy_from_slice(rest);
        self.pending = rest.len();
    }

    pub fn finish(mut self) -> [u8; DIGEST_LEN] {
        let bits = self.total.wrapping_mul(8);
        let mut pad = [0u8; BLOCK_LEN + 8];
        pad[0] = 0x80;
        // 0x80, zeros, then the length: fills the block up to 56 mod 64.
        let zeros = (BLOCK_LEN + 55 - self.pending) % BLOCK_LEN;
        pad[1 + zeros..9 + zeros].copy_from_slice(&bits.to_be_bytes());
        self.update(&pad[..9 + zeros]);
        debug_assert_eq!(self.pending, 0);
        let mut out = [0u8; DIGEST_LEN];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; DIGEST_LEN] {
    let mut hash = Sha256::new();
    hash.update(data);
    hash.finish()
}

/// An HMAC-SHA256 key, prepared: the hash states after the inner and outer
/// padded key blocks, so each tag costs two blocks fewer. The key's bytes
/// are not kept, and Debug shows nothing of either state.
#[derive(Clone)]
pub struct HmacKey {
    inner: Sha256,
    outer: Sha256,
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

impl HmacKey {
    pub fn new(key: &[u8]) -> HmacKey {
        let mut block = [0u8; BLOCK_LEN];
        if key.len() > BLOCK_LEN {
            block[..DIGEST_LEN].copy_from_slice(&sha256(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| {
            let mut hash = Sha256::new();
            hash.update(&block.map(|b| b ^ byte));
            hash
        };
        HmacKey {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// HMAC-SHA256 of the concatenation of `parts`.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
        let mut inner = self.inner.clone();
        for part in parts {
            inner.update(part);
        }
        let mut outer = self.outer.clone();
        outer.update(&inner.finish());
        outer.finish()
    }
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac(key: &[u8], message: &[u8]) -> [u8; DIGEST_LEN] {
    HmacKey::new(key).tag(&[message])
}

/// True if `a` and `b` are equal, in a time that depends only on their
/// lengths, so a forger learns nothing from how fast a guess is refused.
pub fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box: keeps the optimizer from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// Lowercase hex, as sha256sum prints.
pub fn hex(bytes: &[u8]) -> String {
    // By table, not `format!("{b:02x}")`: less code in each binary.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn fips_180_4_examples() {
        let million_a = vec![b'a'; 1_000_000];
        let cases: [(&str, &[u8], &str); 4] = [
            (
                "abc",
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                "448 bits, two blocks",
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
            (
                "one million a",
                &million_a,
                "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
            ),
            (
                "empty",
                b"",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
        ];
        for (what, message, want) in cases {
            assert_eq!(hex(&sha256(message)), want, "{what}");
        }
    }

    /// Any split of the input into `update` calls gives the same digest,
    /// around every block boundary of the padding (55, 56, 63, 64 bytes).
    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 300] {
            let want = sha256(&data[..len]);
            for split in [0, 1, 13, 63, 64, 65, len / 2, len] {
                let split = split.min(len);
                let mut hash = Sha256::new();
                hash.update(&data[..split]);
                hash.update(&data[split..len]);
                assert_eq!(hash.finish(), want, "len {len} split {split}");
            }
            let mut bytewise = Sha256::new();
            for byte in &data[..len] {
                bytewise.update(std::slice::from_ref(byte));
            }
            assert_eq!(bytewise.finish(), want, "len {len} byte by byte");
        }
    }

    /// Both compression functions agree on many states and blocks, so
    /// the vectors above, run through whichever this CPU uses, vouch for
    /// both.
    #[test]
    fn accelerated_and_portable_agree() {
        #[cfg(target_arch = "x86_64")]
        if x86::available() {
            let mut x: u64 = 1;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            for _ in 0..1000 {
                let state: [u32; 8] = std::array::from_fn(|_| next() as u32);
                let block: [u8; BLOCK_LEN] = std::array::from_fn(|_| next() as u8);
                let (mut fast, mut plain) = (state, state);
                // SAFETY: available() said so.
                unsafe { x86::compress(&mut fast, &block) };
                compress_portable(&mut plain, &block);
                assert_eq!(fast, plain);
            }
            return;
        }
        eprintln!("no SHA instructions here: the portable code was tested alone");
        let mut state = INITIAL;
        compress_portable(&mut state, &[0; BLOCK_LEN]);
    }

    #[test]
    fn rfc_4231_hmac_sha256() {
        let long_key = vec![0xaa; 131];
        // (case, key, data, HMAC-SHA256; case 5 lists only the first 128 bits)
        let cases: [(u8, Vec<u8>, Vec<u8>, &str); 7] = [
            (
                1,
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                2,
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                3,
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                4,
                (1..=25).collect(),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                5,
                vec![0x0c; 20],
                b"Test With Truncation".to_vec(),
                "a3b6167473100ee06e0c796c2955552b",
            ),
            (
                6,
                long_key.clone(),
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                7,
                long_key,
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (case, key, data, want) in cases {
            let want = unhex(want);
            let tag = hmac(&key, &data);
            assert_eq!(&tag[..want.len()], &want[..], "RFC 4231 case {case}");
            // The same tag with the message given in two parts.
            let (a, b) = data.split_at(data.len() / 3);
            assert_eq!(HmacKey::new(&key).tag(&[a, b]), tag, "case {case} in parts");
        }
    }

    #[test]
    fn constant_time_comparison() {
        let tag = sha256(b"x");
        let mut other = tag;
        assert!(equal_in_constant_time(&tag, &other));
        for at in [0, 15, 31] {
            other = tag;
            other[at] ^= 1;
            assert!(!equal_in_constant_time(&tag, &other), "byte {at}");
        }
        assert!(!equal_in_constant_time(&tag, &tag[..31]));
        assert!(equal_in_constant_time(b"", b""));
    }

    #[test]
    fn debug_shows_no_key() {
        assert_eq!(format!("{:?}", HmacKey::new(b"secret")), "HmacKey(..)");
    }
}
