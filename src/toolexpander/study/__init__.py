"""The comparison study: named arms at an equal budget (`arms`), the SFT control (`sft`), what was
learned and intervals that resample tools (`breakdown`), the harness (`compare`) and its tables
(`report`)."""
