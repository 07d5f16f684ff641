"""Evaluation of the VAE and the SAE on the fixed evaluation set: every metric the front ends show."""

from __future__ import annotations

from typing import Any

import numpy as np

from collapse_tui.metrics import (
    activation_density_histogram,
    average_ranks,
    bce_from_logits,
    code_entropy,
    dci,
    dead_causes,
    dead_fraction,
    dead_mask,
    explained_variance,
    feature_alignment,
    input_rank,
    l0,
    linear_probe,
    mig,
    mig_sup,
    mig_sup_hcode,
    mse,
    mutual_info_matrix,
    normalized_mi,
    rare_fraction,
    resolves_frequency,
    ridge_importance,
    specialized_neurons,
    specialized_neurons_per_code,
    tree_importance,
)
from collapse_tui.metrics.absorption import absorption_rate, k_sparse_probing
from collapse_tui.metrics.specs import N_FACTORS, frequency_key, threshold_key


def _rounded(array: np.ndarray, digits: int = 4) -> list:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()


def evaluate_vae(vae, images: np.ndarray, factors: np.ndarray, n_bins: int = 20) -> dict[str, Any]:
    """MIG and per-latent statistics of the VAE's latent means, and its reconstruction BCE."""
    means = vae.representation(images, source="latent_mean")
    mi = mutual_info_matrix(means, factors, n_bins=n_bins)
    logits = vae.reconstruct_logits(images)
    targets = images.astype(np.float32) * np.float32(vae.input_scale)
    std = means.std(axis=0)
    return {
        "mig": float(mig(means, factors, n_bins=n_bins)),
        "bce": float(bce_from_logits(targets, logits)),
        # A latent whose mean barely moves across the data carries nothing (a collapsed VAE unit).
        "active_latents": int((std > 0.1).sum()),
        "latent_std": _rounded(std),
        "nmi": _rounded(normalized_mi(mi, factors)),
    }


def feature_splitting(acts: np.ndarray, factors: np.ndarray, decoder: np.ndarray) -> dict[str, Any]:
    """How factor values are spread over neurons: k-sparse probes (F1 from the best 1, 2 and 5 neurons per
    factor value, mean over values then factors: a rise with k says values are split over neurons) and
    absorption (the share of a value's inputs where its main neuron is silent while a decoder neighbour
    fires)."""
    probes = k_sparse_probing(acts, factors)
    out: dict[str, Any] = {f"ksparse_f1_{k}": float(v) for k, v in zip(probes.ks, probes.mean)}
    out["absorption"] = float(absorption_rate(acts, factors, decoder).mean)
    return out


def input_metrics(codes: np.ndarray) -> dict[str, Any]:
    """What the SAE's input offers, the same at every evaluation of a run: its effective rank."""
    rank = input_rank(codes)
    return {"input_participation_ratio": rank.participation_ratio,
            "input_dims_99": rank.dims_for_variance,
            "input_silent_units": rank.silent_units}


def evaluate_sae(sae, codes: np.ndarray, factors: np.ndarray, eval_cfg, vae=None, source: str = "",
                 eval_images: np.ndarray | None = None, input_probe=None,
                 acts: np.ndarray | None = None, recon: np.ndarray | None = None,
                 final: bool = False, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every SAE metric on the evaluation codes.

    With ``vae`` and ``eval_images``, the SAE's reconstruction is also put back into the VAE in place of
    the representation it read and decoded: ``bce`` is the image reconstruction of VAE + SAE, to set
    beside the VAE's own. ``input_probe``: ``linear_probe(codes, factors)``, the same at every evaluation
    of a run, so it can be made once and passed (computed here when not given); ``inputs``: likewise
    :func:`input_metrics`. ``acts`` and ``recon``: the SAE's codes and reconstruction of ``codes``, when
    the caller has them already. ``final`` adds what is measured only at the end: why the dead neurons
    are dead (from the SAE's pre-activations: ``sae`` must hold its final weights) and, with
    ``eval_cfg.dci_tree_samples``, DCI from gradient-boosted trees.
    """
    acts = sae.codes(codes) if acts is None else acts
    recon = sae.reconstruct(codes) if recon is None else recon
    metrics: dict[str, Any] = {}
    for t in eval_cfg.thresholds:
        metrics[threshold_key(t)] = float(dead_fraction(acts, threshold=t))
    metrics["dead_fraction"] = metrics[threshold_key(eval_cfg.thresholds[0])]
    for f in eval_cfg.density_thresholds:
        if resolves_frequency(f, acts.shape[0]):  # else it is the dead fraction again (see sae_phase's message)
            metrics[frequency_key(f)] = float(rare_fraction(acts, f))
    # Which neurons, not only how many: extended training reports revivals from it, the heatmap greys them.
    metrics["dead_mask"] = np.asarray(dead_mask(acts, threshold=eval_cfg.thresholds[0])).astype(bool).tolist()
    # On how many evaluation inputs each neuron fired (exact, unlike a rounded frequency): extended training
    # counts a dead neuron as revived only if it fires often enough afterwards.
    metrics["fire_counts"] = np.asarray(acts > 0).sum(axis=0).astype(int).tolist()
    metrics["n_neurons"] = int(acts.shape[1])
    metrics["n_samples"] = int(acts.shape[0])
    metrics["l0"] = float(l0(acts))
    metrics["mse"] = float(mse(codes, recon))
    metrics["explained_variance"] = float(explained_variance(codes, recon))
    metrics.update(inputs if inputs is not None else input_metrics(codes))
    if final:
        causes = dead_causes(acts, sae.pre_activations(codes), threshold=eval_cfg.thresholds[0])
        metrics["dead_relu"] = causes.relu_fraction
        metrics["dead_gated"] = causes.gated_fraction
    metrics[N_FACTORS] = 0 if factors is None else int(np.shape(factors)[1])
    if factors is not None:  # activations from a file may come without: these metrics are then absent (n/a)
        metrics.update(factor_metrics(sae, codes, factors, eval_cfg, acts, input_probe, final))
    if vae is not None and eval_images is not None:
        logits = vae.reconstruct_logits(eval_images, representation=recon, source=source)
        targets = eval_images.astype(np.float32) * np.float32(vae.input_scale)
        metrics["bce"] = float(bce_from_logits(targets, logits))
    hist = activation_density_histogram(acts)
    metrics["density_histogram"] = hist if isinstance(hist, dict) else hist.to_dict()
    return metrics


def factor_metrics(sae, codes: np.ndarray, factors: np.ndarray, eval_cfg, acts: np.ndarray, input_probe=None,
                   final: bool = False) -> dict[str, Any]:
    """The metrics that read the ground-truth factors (:func:`evaluate_sae`'s, with its arguments): MIG and
    its variants, specialised neurons, probes, DCI, AUROC alignment and, at the end, feature splitting."""
    metrics: dict[str, Any] = {}
    mi = mutual_info_matrix(acts, factors, n_bins=eval_cfg.n_bins)
    nmi = normalized_mi(mi, factors)
    metrics["mig"] = float(mig(acts, factors, n_bins=eval_cfg.n_bins, mi=mi))
    spec = specialized_neurons(acts, factors, tau=eval_cfg.specialized_tau, n_bins=eval_cfg.n_bins, mi=mi)
    metrics["specialized"] = int(spec.count)
    # Beyond MIG (which stays near 0 over hundreds of sparse codes): per-code normalisation, probes, DCI,
    # and how well single neurons detect factor values.
    h_code = code_entropy(acts, n_bins=eval_cfg.n_bins)
    metrics["mig_sup"] = float(mig_sup(acts, factors, n_bins=eval_cfg.n_bins, mi=mi, h_code=h_code))
    metrics["mig_sup_hcode"] = float(mig_sup_hcode(acts, factors, n_bins=eval_cfg.n_bins, mi=mi, h_code=h_code))
    spec_code = specialized_neurons_per_code(acts, factors, tau=eval_cfg.specialized_tau,
                                             n_bins=eval_cfg.n_bins, mi=mi, h_code=h_code)
    metrics["specialized_code"] = int(spec_code.count)
    probe = linear_probe(acts, factors)
    probe_input = input_probe if input_probe is not None else linear_probe(codes, factors)
    metrics["probe_acc"] = probe.mean
    metrics["probe_acc_input"] = probe_input.mean
    metrics["probe_acc_per_factor"] = _rounded(probe.accuracy)
    metrics["probe_acc_input_per_factor"] = _rounded(probe_input.accuracy)
    # DCI from the probe's weights (its informativeness is the probe's accuracy: probe_acc), each factor's
    # importances summed to 1 so factors with many classes do not outweigh the rest.
    scores = dci(ridge_importance(probe.importance[:, probe.varied]))
    metrics["dci_ridge_disentanglement"] = scores.disentanglement
    metrics["dci_ridge_completeness"] = scores.completeness
    if final:
        metrics.update(feature_splitting(acts, factors, sae.decoder_directions()))
    if final and eval_cfg.dci_tree_samples:
        trees = tree_importance(acts, factors, n_train=eval_cfg.dci_tree_samples)
        tree_scores = dci(trees.importance[:, trees.varied], trees.accuracy[trees.varied])
        metrics["dci_trees_disentanglement"] = tree_scores.disentanglement
        metrics["dci_trees_completeness"] = tree_scores.completeness
        metrics["dci_trees_informativeness"] = tree_scores.informativeness
        metrics["dci_tree_inputs"] = trees.n_train
    align = feature_alignment(acts, factors, ranks=average_ranks(acts))
    metrics["auroc_best"] = align.mean_best
    metrics["auroc_coverage"] = align.mean_coverage
    metrics["auroc_best_per_factor"] = _rounded(align.best_mean)
    metrics["auroc_coverage_per_factor"] = _rounded(align.coverage)
    metrics["auroc_best_per_value"] = [_rounded(b) for b in align.best]
    metrics["auroc_best_neuron"] = [b.astype(int).tolist() for b in align.best_neuron]
    metrics["nmi"] = _rounded(nmi)
    metrics["best_factor"] = np.asarray(spec.best_factor).astype(int).tolist()
    metrics["specialized_mask"] = np.asarray(spec.mask).astype(bool).tolist()
    metrics["specialized_code_mask"] = np.asarray(spec_code.mask).astype(bool).tolist()
    return metrics
