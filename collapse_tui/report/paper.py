"""The published numbers the results tables cite beside the rows they correspond to."""

# Roy, Misra & Singh (2026), arXiv 2603.18056: dead neurons at k = 50 (mean ± std over seeds), and the
# specialized neurons left after sparsification (the method is not stated there).
PAPER_SOURCE = "Roy, Misra & Singh (2026), arXiv 2603.18056"
PAPER_DEAD_PCT = {
    ("dsprites", "topk"): (34.4, 0.9),
    ("shapes3d", "topk"): (62.7, 1.3),
    ("dsprites", "l1"): (41.7, 4.4),
    ("shapes3d", "l1"): (90.6, 0.5),
}
PAPER_SPECIALIZED = {"dsprites": 479, "shapes3d": 86}
PAPER_FINAL_K = 50
