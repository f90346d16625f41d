//! Filling and sorting the simulator's large daily buffers in parallel, in place
//! and in an order independent of the number of threads. A day holds millions of
//! contacts: drawn into fresh vectors, they cost more in page faults, reallocation
//! and copying than in drawing, and sorted on one thread they leave the other idle.

use rayon::prelude::*;

/// Resizes `out` to `len`, keeping its allocation, with headroom when it grows (so
/// a day a little larger than the last does not reallocate); new elements are
/// written in parallel, so the fresh memory is faulted in by every thread.
pub(crate) fn resize_in_parallel<T: Copy + Default + Send + Sync>(out: &mut Vec<T>, len: usize) {
    if len <= out.len() {
        out.truncate(len);
        return;
    }
    if out.capacity() < len {
        out.reserve_exact(len + len / 32 - out.len());
    }
    let extra = len - out.len();
    out.par_extend(rayon::iter::repeat_n(T::default(), extra));
}

/// Sets `out` to consecutive parts, `lens[i]` long each, that `fill(i, part)`
/// writes in parallel. `out` keeps its allocation (and its elements up to the new
/// length are overwritten, not re-initialised), so a buffer refilled daily costs
/// neither page faults nor copies.
pub(crate) fn fill_parts<T: Copy + Default + Send + Sync>(
    out: &mut Vec<T>,
    lens: &[usize],
    fill: impl Fn(usize, &mut [T]) + Sync,
) {
    resize_in_parallel(out, lens.iter().sum());
    split_parts(out, lens.iter().copied())
        .into_par_iter()
        .enumerate()
        .for_each(|(i, part)| fill(i, part));
}

/// `out` cut into consecutive parts of the given lengths.
pub(crate) fn split_parts<T>(out: &mut [T], lens: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    let mut parts = Vec::with_capacity(lens.size_hint().0);
    let mut rest = out;
    for len in lens {
        let (part, tail) = rest.split_at_mut(len);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// A stable counting sort by key, in place in reused buffers: afterwards
/// `values[offsets[k]..offsets[k + 1]]` are `value(i)` of every item `i` with `k`
/// among its `keys(i)` (all below `key_count`), in item order. The keys are split
/// into one range per thread; each scans every item and writes only its own range,
/// so the result does not depend on the number of threads.
#[derive(Debug, Default)]
pub(crate) struct Grouping<V = u32> {
    /// Where each key's values start (`key_count + 1` entries).
    pub(crate) offsets: Vec<u32>,
    /// The values, grouped by key.
    pub(crate) values: Vec<V>,
}

impl<V: Copy + Default + Send + Sync> Grouping<V> {
    /// Sorts `items` (see the type); `value(i, j)` is what item `i` puts under its
    /// `j`-th key. `cursor` is scratch, shared by groupings that are not sorted at
    /// once.
    pub(crate) fn sort<I: Sync, const K: usize>(
        &mut self,
        items: &[I],
        key_count: usize,
        keys: impl Fn(&I) -> [u32; K] + Sync,
        value: impl Fn(usize, usize) -> V + Sync,
        cursor: &mut Vec<u32>,
    ) {
        let per_range = key_count
            .div_ceil(rayon::current_num_threads().max(1))
            .max(1);

        // offsets[k + 1] counts the values of k, then sums those up to k in its
        // range, then up to k.
        resize_in_parallel(&mut self.offsets, key_count + 1);
        self.offsets[0] = 0;
        self.offsets[1..]
            .par_chunks_mut(per_range)
            .enumerate()
            .for_each(|(r, counts)| {
                counts.fill(0);
                let lo = r * per_range;
                for item in items {
                    for k in keys(item) {
                        if let Some(n) = counts.get_mut((k as usize).wrapping_sub(lo)) {
                            *n += 1;
                        }
                    }
                }
                for i in 1..counts.len() {
                    counts[i] += counts[i - 1];
                }
            });
        let mut total = 0;
        let bases: Vec<u32> = self.offsets[1..]
            .chunks(per_range)
            .map(|counts| {
                let base = total;
                total += counts.last().copied().unwrap_or(0);
                base
            })
            .collect();
        self.offsets[1..]
            .par_chunks_mut(per_range)
            .zip(&bases)
            .for_each(|(counts, &base)| counts.iter_mut().for_each(|n| *n += base));

        let offsets = &self.offsets;
        resize_in_parallel(&mut self.values, total as usize);
        resize_in_parallel(cursor, key_count);
        let range_lens = (0..key_count.div_ceil(per_range)).map(|r| {
            let (lo, hi) = (r * per_range, ((r + 1) * per_range).min(key_count));
            (offsets[hi] - offsets[lo]) as usize
        });
        let parts = split_parts(&mut self.values, range_lens);
        parts
            .into_par_iter()
            .zip(cursor.par_chunks_mut(per_range))
            .enumerate()
            .for_each(|(r, (values, cursor))| {
                let lo = r * per_range;
                let first = offsets[lo];
                for (k, slot) in cursor.iter_mut().enumerate() {
                    *slot = offsets[lo + k] - first;
                }
                for (i, item) in items.iter().enumerate() {
                    for (j, k) in keys(item).into_iter().enumerate() {
                        if let Some(slot) = cursor.get_mut((k as usize).wrapping_sub(lo)) {
                            values[*slot as usize] = value(i, j);
                            *slot += 1;
                        }
                    }
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_is_a_stable_sort_by_key_on_any_number_of_threads() {
        // Pairs of keys, as a contact has two people; some keys never occur.
        let items: Vec<[u32; 2]> = (0..5_000u32)
            .map(|i| [i.wrapping_mul(2_654_435_761) % 997, i % 13])
            .collect();
        let key_count = 1_000;
        let mut expected = vec![Vec::new(); key_count];
        for (i, keys) in items.iter().enumerate() {
            for &k in keys {
                expected[k as usize].push(i as u32);
            }
        }
        let mut cursor = Vec::new();
        // Reused buffers, larger than needed, are refilled exactly.
        let mut grouping = Grouping {
            offsets: vec![7; 3 * key_count],
            values: vec![7; 30_000],
        };
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| grouping.sort(&items, key_count, |&k| k, |i, _| i as u32, &mut cursor));
            assert_eq!(grouping.offsets.len(), key_count + 1);
            for (k, want) in expected.iter().enumerate() {
                let (lo, hi) = (grouping.offsets[k], grouping.offsets[k + 1]);
                assert_eq!(&grouping.values[lo as usize..hi as usize], want, "key {k}");
            }
            assert_eq!(grouping.values.len(), 2 * items.len());
        }
    }

    #[test]
    fn fill_parts_writes_each_part_in_place() {
        let mut out = vec![9u32; 10];
        fill_parts(&mut out, &[2, 0, 3], |i, part| part.fill(i as u32));
        assert_eq!(out, [0, 0, 2, 2, 2]);
        fill_parts(&mut out, &[1, 6], |i, part| part.fill(i as u32 + 1));
        assert_eq!(out, [1, 2, 2, 2, 2, 2, 2]);
    }
}
