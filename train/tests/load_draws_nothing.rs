//! Loading a checkpoint draws no random parameters before setting them: drawing Falcon-7B only
//! to overwrite it cost 26 GB of device memory and a third of the load. The backend's generator
//! is process-wide, so this check has a test binary of its own: nothing else draws beside it.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use falconry_train::{load_hf_as, CpuBackend, Quantize};

type B = CpuBackend;

/// The next values of the seeded generator after `between` ran.
fn draws_after(between: impl FnOnce()) -> Vec<f32> {
    let device = Default::default();
    B::seed(&device, 7);
    between();
    Tensor::<B, 1>::random([16], Distribution::Default, &device)
        .into_data()
        .into_vec()
        .unwrap()
}

#[test]
fn loading_leaves_the_generator_where_it_was() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/falcon-7b-style");
    let untouched = draws_after(|| {});
    for quantize in [Quantize::None, Quantize::Nf4] {
        let after_load = draws_after(|| {
            load_hf_as::<B>(&dir, quantize, &Default::default()).unwrap();
        });
        assert_eq!(
            after_load, untouched,
            "{quantize:?}: loading drew random values"
        );
    }
}
