//! CPython's `random.Random`: MT19937 seeded as `Random(int)` seeds it, `getrandbits`,
//! `_randbelow` and `random.sample` (CPython 3.11, `Lib/random.py`, `Modules/_randommodule.c`).
//!
//! lm-eval draws few-shot examples with `Random(1234).sample(pool, n)`; `sample` looks only at
//! `len(pool)` and `n`, so drawing indices reproduces its picks.

const N: usize = 624;
const M: usize = 397;

/// `random.Random` of CPython.
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative int: `init_by_array` of its 32-bit words,
    /// least significant first (`[0]` for 0).
    pub fn new(seed: u64) -> Self {
        let mut key = vec![seed as u32];
        if seed >> 32 != 0 {
            key.push((seed >> 32) as u32);
        }
        let mut r = Self {
            mt: [0; N],
            index: N,
        };
        r.init_by_array(&key);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
    }

    fn generate(&mut self) {
        let twist = |a: u32, b: u32, c: u32| {
            let y = (a & 0x8000_0000) | (b & 0x7fff_ffff);
            c ^ (y >> 1) ^ if y & 1 == 1 { 0x9908_b0df } else { 0 }
        };
        for k in 0..N {
            self.mt[k] = twist(self.mt[k], self.mt[(k + 1) % N], self.mt[(k + M) % N]);
        }
        self.index = 0;
    }

    /// `genrand_uint32`, tempered.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.generate();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for `k <= 32`.
    pub fn getrandbits(&mut self, k: u32) -> u32 {
        assert!(k <= 32, "getrandbits above 32 bits is not needed here");
        if k == 0 {
            return 0;
        }
        self.next_u32() >> (32 - k)
    }

    /// `_randbelow_with_getrandbits(n)`: rejection sampling on `n.bit_length()` bits.
    pub fn randbelow(&mut self, n: usize) -> usize {
        assert!(
            n <= u32::MAX as usize,
            "pools above 2^32 are not needed here"
        );
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// `sample(range(n), k)`: CPython's two paths, a pool swap when a list of `n` is smaller
    /// than a set of `k`, else rejection against the picks so far.
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n, "sample larger than population");
        let mut setsize = 21usize;
        if k > 5 {
            // `4 ** ceil(log(k * 3, 4))`; k * 3 is never a power of 4, so no rounding edge.
            setsize += 4usize.pow(((k * 3) as f64).log(4.0).ceil() as u32);
        }
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            (0..k)
                .map(|i| {
                    let j = self.randbelow(n - i);
                    let picked = pool[j];
                    pool[j] = pool[n - i - 1];
                    picked
                })
                .collect()
        } else {
            let mut selected = std::collections::HashSet::with_capacity(k);
            (0..k)
                .map(|_| loop {
                    let j = self.randbelow(n);
                    if selected.insert(j) {
                        break j;
                    }
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by CPython 3.11's `random`.
    #[test]
    fn sample_equals_cpython() {
        let mut r = PyRandom::new(1234);
        assert_eq!(
            r.sample(1119, 25),
            [
                902, 239, 15, 185, 71, 171, 201, 726, 484, 35, 63, 32, 708, 991, 949, 304, 186,
                374, 234, 29, 1030, 996, 511, 132, 1108
            ]
        );
        // The generator goes on: the next document's draws.
        assert_eq!(
            r.sample(1119, 25),
            [
                954, 140, 182, 1054, 94, 552, 129, 619, 985, 727, 545, 510, 409, 928, 1085, 39,
                1040, 144, 11, 683, 294, 968, 772, 342, 110
            ]
        );
    }

    #[test]
    fn small_pools_take_the_swap_path() {
        let mut r = PyRandom::new(1234);
        assert_eq!(r.sample(20, 5), [14, 3, 0, 2, 1]);
        assert_eq!(r.sample(20, 7), [2, 3, 11, 7, 0, 15, 12]);
        assert_eq!(r.getrandbits(32), 68034096);
    }

    #[test]
    fn seeds_of_two_words_and_zero() {
        let mut r = PyRandom::new((1 << 40) + 5);
        assert_eq!(
            r.sample(9542, 11),
            [8263, 8469, 4400, 449, 8699, 763, 2710, 1302, 2193, 3915, 2240]
        );
        let mut r = PyRandom::new(0);
        assert_eq!(r.getrandbits(32), 3626764237);
        assert_eq!(r.getrandbits(7), 49);
    }
}
