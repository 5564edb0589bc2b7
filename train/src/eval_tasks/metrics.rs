//! Per-document scores and their aggregation, as lm-eval 0.4.13 computes them
//! (`ConfigurableTask.process_results` for `multiple_choice`, `truthfulqa/utils.py`
//! `process_results_mc2`, `api/metrics.py` `mean` / `mean_stderr` / `pooled_sample_stderr` /
//! `aggregate_subtask_metrics`), with the same order of floating-point operations.

/// `numpy.argmax`: the first maximum; a NaN, if any, wins (numpy returns the first NaN).
pub fn argmax(xs: &[f64]) -> usize {
    if let Some(i) = xs.iter().position(|x| x.is_nan()) {
        return i;
    }
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// `acc`: 1 when the likeliest choice is the gold one.
pub fn acc(lls: &[f64], gold: usize) -> f64 {
    if argmax(lls) == gold {
        1.0
    } else {
        0.0
    }
}

/// `acc_norm`: the same on `ll / len(choice)`, `len` counting Unicode characters as Python's
/// `len` does (the choice without its leading delimiter space).
pub fn acc_norm(lls: &[f64], choices: &[String], gold: usize) -> f64 {
    let normed: Vec<f64> = lls
        .iter()
        .zip(choices)
        .map(|(ll, c)| ll / c.chars().count() as f64)
        .collect();
    acc(&normed, gold)
}

/// numpy's float64 `sum` of a contiguous array up to 128 elements (`pairwise_sum`: a plain
/// loop below 8, else eight running sums combined pairwise, then the tail).
fn np_sum(xs: &[f64]) -> f64 {
    let n = xs.len();
    assert!(
        n <= 128,
        "numpy's blocked pairwise sum above 128 is not needed here"
    );
    if n < 8 {
        let mut res = 0.0;
        for &x in xs {
            res += x;
        }
        return res;
    }
    let mut r = [0.0f64; 8];
    r.copy_from_slice(&xs[..8]);
    let mut i = 8;
    while i < n - n % 8 {
        for j in 0..8 {
            r[j] += xs[i + j];
        }
        i += 8;
    }
    let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for &x in &xs[i..] {
        res += x;
    }
    res
}

/// TruthfulQA `mc2`: `p = exp(ll)` (no max subtracted, as lm-eval), normalised, the mass of the
/// label-1 choices.
pub fn mc2(lls: &[f64], labels: &[u8]) -> f64 {
    let probs: Vec<f64> = lls.iter().map(|ll| ll.exp()).collect();
    let total = np_sum(&probs);
    let truthful: Vec<f64> = probs
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l == 1)
        .map(|(p, _)| p / total)
        .collect();
    np_sum(&truthful)
}

/// `mean`: Python's `sum(arr) / len(arr)` (left to right, as CPython 3.11's `sum`).
pub fn mean(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for &x in xs {
        s += x;
    }
    s / xs.len() as f64
}

/// `mean_stderr`: the `n - 1` sample standard deviation over `sqrt(n)`; `None` for fewer
/// than 2 values (lm-eval reports `"N/A"`).
pub fn mean_stderr(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let mu = mean(xs);
    let mut ss = 0.0;
    for &x in xs {
        ss += (x - mu).powi(2);
    }
    Some((ss / (xs.len() - 1) as f64).sqrt() / (xs.len() as f64).sqrt())
}

/// `aggregate_subtask_metrics(..., weight_by_size=True)`: `Σ metric·size / Σ size`.
pub fn weighted_mean(values: &[f64], sizes: &[usize]) -> f64 {
    let mut s = 0.0;
    for (v, &n) in values.iter().zip(sizes) {
        s += v * n as f64;
    }
    s / sizes.iter().sum::<usize>() as f64
}

/// `pooled_sample_stderr`: `sqrt(Σ (n-1)·se²·n / (Σ n - k) / Σ n)`.
pub fn pooled_stderr(stderrs: &[f64], sizes: &[usize]) -> f64 {
    let mut s = 0.0;
    for (se, &n) in stderrs.iter().zip(sizes) {
        s += (n as f64 - 1.0) * se.powi(2) * n as f64;
    }
    let total: usize = sizes.iter().sum();
    (s / (total - sizes.len()) as f64 / total as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[-2.0, -1.0, -1.0]), 1);
        assert_eq!(argmax(&[-2.0, f64::NAN, -1.0]), 1);
    }

    #[test]
    fn acc_norm_counts_characters_not_bytes() {
        // "é" is 2 bytes, 1 character: per character -3/1 < -5/2 (choice 1 wins); per byte
        // -3/2 > -5/2 (choice 0 would).
        let choices = ["é".to_string(), "ab".to_string()];
        assert_eq!(acc_norm(&[-3.0, -5.0], &choices, 1), 1.0);
        assert_eq!(acc_norm(&[-3.0, -5.0], &choices, 0), 0.0);
    }

    #[test]
    fn stderr_as_lm_eval() {
        // statistics.stdev([1, 0, 0, 1, 1]) / sqrt(5)
        let se = mean_stderr(&[1.0, 0.0, 0.0, 1.0, 1.0]).unwrap();
        assert!((se - 0.244_948_974_278_317_8).abs() < 1e-15, "{se}");
        assert_eq!(mean_stderr(&[1.0]), None);
        // Pooling one task's stderr is that stderr.
        assert!((pooled_stderr(&[se], &[5]) - se).abs() < 1e-15);
    }

    #[test]
    fn numpy_pairwise_sum_order() {
        // 0.1 * 11 summed as numpy does: eight lanes, pairs, then the tail.
        let xs = [0.1; 11];
        let lanes = ((0.1f64 + 0.1) + (0.1 + 0.1)) + ((0.1 + 0.1) + (0.1 + 0.1));
        assert_eq!(np_sum(&xs), lanes + 0.1 + 0.1 + 0.1);
    }
}
