//! Splits a fleet across replicas: a stable hash partition of domain names, so N exporters
//! (a StatefulSet) cover every domain exactly once, whatever the order of the configuration.

/// This replica's share of the fleet: shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// The error names the values and the rule.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("--shard.count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "--shard.index {index} is out of range for --shard.count {count}: use 0..{}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether `domain` (normalised) belongs to this shard.
    pub fn owns(&self, domain: &str) -> bool {
        self.count <= 1 || shard_of(domain, self.count) == self.index
    }
}

/// The shard a domain belongs to among `count`: jump consistent hash (Lamping and Veach,
/// 2014) of the FNV-1a hash of the name. Stable across processes and releases, and when the
/// shard count grows from N to N+1 only about 1/(N+1) of the domains move.
pub fn shard_of(domain: &str, count: u32) -> u32 {
    jump_hash(stable_hash(domain.as_bytes()), count)
}

/// FNV-1a, 64-bit, of `bytes`: small, well spread for short names, and fixed by its definition,
/// so shard assignment and schedule phases never change between releases or processes.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets.max(1));
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        let divisor = ((key >> 33) + 1) as f64;
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / divisor)) as i64;
    }
    u32::try_from(b).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_fnv1a_64() {
        // Published FNV-1a test vectors.
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("customer{i}.example.com")).collect()
    }

    #[test]
    fn three_shards_cover_every_domain_exactly_once() {
        let domains = names(10_000);
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut sizes = [0usize; 3];
        for d in &domains {
            let owners: Vec<u32> = shards
                .iter()
                .filter(|s| s.owns(d))
                .map(|s| s.index)
                .collect();
            assert_eq!(owners.len(), 1, "{d} owned by {owners:?}");
            sizes[owners[0] as usize] += 1;
        }
        // roughly even: each within 10% of a third
        for size in sizes {
            assert!((3_000..3_700).contains(&size), "{sizes:?}");
        }
    }

    #[test]
    fn assignment_ignores_order_and_is_stable() {
        let mut domains = names(1_000);
        let before: Vec<(String, u32)> = domains
            .iter()
            .map(|d| (d.clone(), shard_of(d, 3)))
            .collect();
        domains.reverse();
        for (d, s) in before {
            assert_eq!(shard_of(&d, 3), s);
        }
        // fixed values: the partition must not change between releases
        assert_eq!(shard_of("example.com", 3), shard_of("example.com", 3));
        let pinned: Vec<u32> = ["a.test", "b.test", "gmail.com", "example.org"]
            .iter()
            .map(|d| shard_of(d, 5))
            .collect();
        assert_eq!(pinned, PINNED);
    }

    const PINNED: [u32; 4] = [3, 2, 3, 2];

    #[test]
    fn growing_moves_few_domains() {
        let domains = names(10_000);
        let moved = domains
            .iter()
            .filter(|d| shard_of(d, 4) != shard_of(d, 5))
            .count();
        assert!(moved < 2_600, "{moved} of 10000 moved");
    }

    #[test]
    fn invalid_shards_are_refused() {
        assert!(Shard::new(0, 0).is_err());
        assert!(Shard::new(3, 3).unwrap_err().contains("0..2"));
        assert!(Shard::default().owns("anything.test"));
    }
}
