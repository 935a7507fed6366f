"""The rules that decide the paper's claims: every claim's words, statistic, premise and decision.

This file is the single home of the rules. Each figure measures the named values and
passes them to :func:`ccalens.experiments.claims.decide`, which evaluates the ``premise``
and ``decision`` code below and nothing else; the commit that last changed this file is
written into every claim record (``rule_commit``), and a committed result must come after
it. A rule is changed only for a reason from the paper's text or from statistics, never
from an outcome, and every change is written down in ``results/REVISIONS.md`` with the
outcome under the old and the new rule.

Conventions: distances are PWCCA distances, symmetrised (the mean of both directions),
unless a value's name says otherwise; ``tt``/``rr``/``tr`` are means over pairs within the
generalising group, within the memorising group and between the groups.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    id: str
    claim: str  # the paper's words
    statistic: str  # what is measured
    value: str  # the headline value (a name in the statistic's values)
    decision: str  # Python expression over the statistic's values
    words: str  # the decision in words
    premise: str = "True"  # Python expression over the statistic's values
    premise_words: str = ""


_CNN_PREMISE = "min_train_accuracy >= 0.995"
_CNN_PREMISE_WORDS = "every network of both groups reached >= 99.5% training accuracy (the paper: near-zero loss)"
_RNN_PREMISE = "plateau_reached"
_RNN_PREMISE_WORDS = "training reached a validation-perplexity plateau (performance converged)"

_RULES = [
    # ---- Figure 1: signal and noise through training ------------------------------------
    Rule("fig1.unconverged",
         "Many CCA coefficients continue to change well after the network's performance has converged.",
         "Coefficients of layer L at t0 (the first epoch whose test accuracy is within one point of that at T) "
         "against L at T; T is the last epoch at which the layer still changes over (T/2, T] (mean canonical "
         "correlation of L at T/2 with L at T below 0.9), at most the epochs trained.",
         "fraction_below_0_9", "fraction_below_0_9 >= 0.25",
         "at least a quarter of the coefficients at t0 are below 0.9",
         "t0 < T", "test performance converged before T (t0 < T)"),
    Rule("fig1.signal_stable_noise_decorrelates",
         "Vectors which stabilized early remained stable, while the unstable vectors continued to vary.",
         "CCA of L at t_early (a tenth of T) with L at T/2; S = L(T/2)'s k best-converged canonical variates, "
         "B = its k least converged, R = k random orthonormal directions of L(T/2) (mean of 10 draws), "
         "k = a quarter of the canonical pairs; each set's mean CCA similarity with L at every checkpoint t, "
         "summarised over t in (T/2, T] ('after') and (t_early, T/2) ('before').",
         "gap_after",
         "S_min_after >= 0.8 and gap_after >= 0.2 and S_mean_after > R_mean_after > B_mean_after",
         "after T/2: S never below 0.8, mean S - mean B >= 0.2, and the random control lies between S and B",
         "rho_half_vs_final < 0.9", "the layer still changes over (T/2, T]: mean rho(L(T/2), L(T)) < 0.9"),
    Rule("fig1rnn.unconverged",
         "Many CCA coefficients continue to change well after the network's performance has converged (RNN).",
         "As fig1.unconverged, on the shallow LSTM's layers over checkpoints; t0 is the first checkpoint whose "
         "validation perplexity is within 2% of that at T.",
         "fraction_below_0_9", "fraction_below_0_9 >= 0.25",
         "at least a quarter of the coefficients at t0 are below 0.9",
         "plateau_reached and t0 < T", _RNN_PREMISE_WORDS + ", before T (t0 < T)"),
    Rule("fig1rnn.signal_stable_noise_decorrelates",
         "Vectors which stabilized early remained stable, while the unstable vectors continued to vary (RNN).",
         "As fig1.signal_stable_noise_decorrelates, over checkpoints; t_early is the first checkpoint after the "
         "initial unigram plateau (validation perplexity below 0.9 x the unigram model's).",
         "gap_after",
         "S_min_after >= 0.8 and gap_after >= 0.2 and S_mean_after > R_mean_after > B_mean_after",
         "after T/2: S never below 0.8, mean S - mean B >= 0.2, and the random control lies between S and B",
         "plateau_reached and rho_half_vs_final < 0.9",
         _RNN_PREMISE_WORDS + ", and the layer still changes over (T/2, T]: mean rho(L(T/2), L(T)) < 0.9"),
    # ---- Figure 2: synthetic signal and noise -----------------------------------------
    Rule("fig2.mean_underestimates",
         "As the signal to noise ratio decreases, the unweighted mean underestimates the shared structure.",
         "Seed-mean unweighted mean CCA at the highest signal:noise ratio minus at the lowest.",
         "mean_cca_drop", "mean_cca_drop > 0.25", "mean CCA falls by more than 0.25 across the sweep"),
    Rule("fig2.pwcca_robust",
         "The projection weighted mean remains largely robust.",
         "Seed-mean PWCCA drop across the sweep, as a fraction of mean CCA's drop.",
         "drop_ratio", "drop_ratio < 0.5", "PWCCA loses less than half of what mean CCA loses"),
    Rule("fig2.svcca_between",
         "SVCCA performs better than the unweighted mean but less well than the projection weighting.",
         "At every signal:noise ratio, paired over seeds: SVCCA - mean CCA and PWCCA - SVCCA; a violation is "
         "a ratio where either difference is below 0 with one-sided paired t-test p < 0.05.",
         "min_gap", "violations == 0", "no ratio where SVCCA is significantly outside [mean CCA, PWCCA]",
         "n_per_neuron >= 50", "at least 50 datapoints per neuron at the widest layer"),
    # ---- Figure 3: generalising vs memorising ------------------------------------------
    Rule("fig3.early_equal",
         "At early layers, all networks converged to equally similar solutions, regardless of whether they "
         "generalize or memorize.",
         "rr - tt at conv1 (training images) against the spread of within-group pair distances at conv1 (the "
         "mean of sd_tt and sd_rr), as an equivalence test (two one-sided parts): 'equally similar' = a group "
         "difference within the difference between two pairs of networks of the same group, on either side.",
         "conv1_diff_minus_spread",
         (Part("conv1_diff_minus_spread", "below", 0.0,
               "control: the pair-to-pair spread of distances within a group, the same run",
               "rr - tt at conv1 is below +spread"),
          Part("conv1_diff_plus_spread", "above", 0.0,
               "control: the pair-to-pair spread of distances within a group, the same run",
               "rr - tt at conv1 is above -spread")),
         "-spread < rr - tt < +spread at conv1 (equivalence within the within-group spread)", _CNN_PREMISE,
         _CNN_PREMISE_WORDS),
    Rule("fig3.late_generalisers_closer",
         "At later layers, groups of generalizing networks converged to substantially more similar solutions "
         "than groups of memorizing networks.",
         "tt and rr at conv3 and fc1 (training images).", "rr_minus_tt_fc1",
         "tt_conv3 < rr_conv3 and rr_minus_tt_fc1 >= 0.05", "tt < rr at conv3, and rr - tt >= 0.05 at fc1",
         _CNN_PREMISE, _CNN_PREMISE_WORDS),
    Rule("fig3.memorisers_as_close",
         "Memorizing networks are as similar to each other as they are to a generalizing network.",
         "rr - tr against the spread of pair distances (the mean of sd_rr and sd_tr) at each hidden layer after "
         "conv1 (conv2, conv3, fc1; training images), as an equivalence test (two one-sided parts per layer).",
         "fc1_rr_tr_minus_spread",
         tuple(Part(f"{layer}_rr_tr_{side}_spread", held, 0.0, "control: the pair-to-pair spread, the same run",
                    f"at {layer} rr - tr is {'below +' if side == 'minus' else 'above -'}spread")
               for layer in ("conv2", "conv3", "fc1") for side, held in (("minus", "below"), ("plus", "above"))),
         "-spread < rr - tr < +spread at conv2, conv3 and fc1", _CNN_PREMISE, _CNN_PREMISE_WORDS),
    Rule("fig3.softmax_converges_train",
         "At the softmax layer, sets of both generalizing and memorizing networks converged to highly similar "
         "solutions when CCA distance was computed based on training data.",
         "tt and rr at the softmax (the softmax of the logits, its own layer), training images.",
         "max_within_softmax", "max_within_softmax <= 0.1", "tt <= 0.1 and rr <= 0.1 at the softmax",
         _CNN_PREMISE, _CNN_PREMISE_WORDS),
    Rule("fig3.softmax_test_only_generalisers",
         "When test data was used, only generalizing networks converged to similar softmax outputs (Figure A10).",
         "rr - tt at the softmax on test images.", "rr_minus_tt_softmax_test",
         "rr_minus_tt_softmax_test >= 0.1 and tt_softmax_test <= 0.1",
         "tt <= 0.1 and rr - tt >= 0.1 at the softmax on test images", _CNN_PREMISE, _CNN_PREMISE_WORDS),
    Rule("fig3.unweighted_blurs",
         "While unweighted CCA revealed the same broad pattern, it does not reveal that generalizing networks "
         "get more similar in the final two layers (Figure A9).",
         "late_drop = tt at conv3 minus the mean of tt at the final two layers (fc1, logits), with PWCCA and "
         "with unweighted mean CCA.", "late_drop_pwcca_minus_mean_cca",
         "late_drop_pwcca >= 0.05 and late_drop_mean_cca < 0.5 * late_drop_pwcca",
         "PWCCA shows the generalisers' distance falling by >= 0.05 over the final two layers, and mean CCA "
         "shows less than half of that fall", _CNN_PREMISE, _CNN_PREMISE_WORDS),
    Rule("fig3.cosine_euclid_miss",
         "Traditional distance metrics, such as cosine or Euclidean distance, were insufficient to reveal this "
         "difference (Figure A5).",
         "Separation of the groups at fc1, (rr - tt) / (sd_rr + sd_tt) over pairs, per measure.", "sep_margin",
         "sep_cosine < sep_pwcca and sep_euclidean < sep_pwcca",
         "the separation is smaller with cosine and with Euclidean distance than with PWCCA",
         _CNN_PREMISE, _CNN_PREMISE_WORDS),
    # ---- Figure 4: width ----------------------------------------------------------------
    Rule("fig4.wider_closer",
         "Larger networks converged to much more similar solutions than smaller networks.",
         "Group-mean PWCCA distance at the final conv layer (conv3), each pair averaged over 20 random subsets "
         "of a fixed size, a quarter of the widest layer (footnote 8); Spearman correlation with width.",
         "spearman", "spearman <= -0.8", "Spearman(width, group-mean distance) <= -0.8"),
    Rule("fig4.distance_predicts_accuracy",
         "Across pairs of networks, the correlation between test accuracy and the pairwise CCA distance was -0.96.",
         "Pearson correlation over all within-width pairs between the subset-averaged conv3 distance and the "
         "pair's mean test accuracy.", "pearson", "pearson <= -0.5", "Pearson(distance, test accuracy) <= -0.5"),
    # ---- Figure 5: learning rates ---------------------------------------------------------
    Rule("fig5.clusters_by_lr",
         "Networks converged to distinct clusters of solutions, which corresponded with the learning rate used.",
         "fc1 distances between networks at a common rank: PWCCA on each network's leading k principal components, "
         "k = the smallest fc1 rank over networks (CCA counts min(rank) correlations, so a network with dead units "
         "would otherwise look close to every other); full-rank PWCCA is reported beside. The gap (mean between- "
         "minus within-rate distance) and its permutation p (rates shuffled over networks); the adjusted Rand index "
         "of complete-linkage clusters (as many as rates) with the rates; 1-nearest-neighbour recovery against its "
         "chance rate (seeds - 1) / (networks - 1). The ARI is tested against the rates shuffled over networks "
         "(p_ari_complete; a clustering index is not a smooth function of the networks, so it has no jackknife "
         "interval).", "p_ari_complete",
         (Part("p_permutation", "below", "level", "convention: the family-wise level", "the gap is beyond chance",
               kind="p"),
          Part("p_ari_complete", "below", "level", "control: the ARI with the rates permuted over networks",
               "the clusters agree with the rates beyond chance", kind="p"),
          Part("nn_recovery_minus_chance", "above", 0.0, "convention: chance, (seeds - 1) / (networks - 1)",
               "a network's nearest neighbour shares its rate more often than chance")),
         "gap beyond its permutation null, ARI above 0, 1-NN recovery above chance", _FIG5_PREMISE,
         _FIG5_PREMISE_WORDS),
    Rule("fig5.one_cluster_apart",
         "One cluster highly dissimilar to the other clusters.",
         "At the common rank, over the learning-rate groups (the clusters that the paper's clusters correspond to; "
         "each holds every seed of its rate): for each group g, excess_g = its mean distance to the other groups "
         "minus the mean distance between the other groups; the farthest group is the one with the largest excess. "
         "Intervals from a delete-one jackknife over networks within their rate, at the Bonferroni confidence over "
         "the candidate groups (1 - alpha / groups), so that they hold simultaneously and the farthest group's "
         "interval keeps its level although the group was chosen by the data.", "excess_farthest",
         (Part("excess_farthest", "above", 0.0, "convention: 0 (every group as far from the rest as the rest are "
               "from each other)", "one group is farther from the rest than the rest are from each other"),),
         "the farthest learning-rate group's excess distance is above 0 (simultaneous intervals over the groups)",
         _FIG5_PREMISE, _FIG5_PREMISE_WORDS),
    Rule("fig5.clusters_match_ablation",
         "The clusters found using CCA aligned nearly perfectly with those observed using ablation robustness "
         "(Figure 5b).",
         "Adjusted Rand index between the complete-linkage CCA clusters (common rank) and Ward clusters (as many) "
         "of the networks in the standardised plane of generalisation error and ablation robustness, tested "
         "against the ablation clusters permuted over networks (a clustering index has no jackknife interval).",
         "p_ari_cca_vs_ablation",
         (Part("p_ari_cca_vs_ablation", "below", "level", "control: the ARI with one clustering permuted over "
               "networks", "the two clusterings agree beyond chance", kind="p"),),
         "ARI between the clusterings above 0",
         _FIG5_PREMISE + " and p_ablation_structure <= 0.05",
         _FIG5_PREMISE_WORDS + ", and the ablation curves carry learning-rate structure (permutation test of the "
         "between- minus within-rate distance of the curves, p <= 0.05)"),
    # ---- Figure 6: RNNs through training ----------------------------------------------
    Rule("fig6.bottom_up",
         "RNNs exhibit bottom-up convergence: early layers converge to their final representation before later "
         "layers.",
         "Per layer, PWCCA similarity (mean of both directions) to the final state at every checkpoint, "
         "normalised to progress from its start; t90 = the first fraction of training with progress >= 0.9; "
         "ordering score = mean sign of lower-minus-upper progress over interior checkpoints and adjacent layers.",
         "ordering_score", "t90_nondecreasing and ordering_score > 0",
         "t90 does not decrease with depth and the ordering score is positive", _RNN_PREMISE, _RNN_PREMISE_WORDS),
    Rule("fig6.pwcca_clearer_than_mean",
         "The weighted mean reveals this effect much more accurately than the unweighted mean.",
         "Clarity of the bottom-up ordering per measure: the mean over adjacent layers of the gap in "
         "convergence time (progress crossing 0.9, interpolated) divided by its bootstrap sd over probe windows; "
         "averaged over both models.", "clarity_pwcca_minus_mean_cca", "clarity_pwcca > clarity_mean_cca",
         "clarity with PWCCA > clarity with unweighted mean CCA", _RNN_PREMISE, _RNN_PREMISE_WORDS),
    Rule("fig6.cca_clearer_than_cosine_euclid",
         "While these other metrics also reveal a bottom up convergence, the results with CCA highlight this "
         "phenomena much more clearly (Figure A8).",
         "Clarity as in fig6.pwcca_clearer_than_mean, for cosine similarity and Euclidean distance of the raw "
         "hidden states.", "clarity_margin", "clarity_pwcca > clarity_cosine and clarity_pwcca > clarity_euclidean",
         "clarity with PWCCA > clarity with cosine and with Euclidean distance", _RNN_PREMISE, _RNN_PREMISE_WORDS),
    # ---- Sequence time (Appendix A.3) --------------------------------------------------
    Rule("seq.cca_beyond_cosine",
         "CCA is capable of finding similarity across sequence timesteps which are missed by traditional metrics.",
         "Between the hidden states at timesteps t1 != t2, each measure's beyond-chance similarity "
         "(s - null) / (1 - null), null = the same measure with the windows shuffled on one side; mean over "
         "timestep pairs; gap = PWCCA's minus the larger of raw and centred cosine's.",
         "gap", "gap >= 0.1", "PWCCA's mean beyond-chance similarity exceeds cosine's (raw and centred) by >= 0.1",
         "plateau_reached and windows_per_neuron >= 50",
         _RNN_PREMISE_WORDS + ", and at least 50 probe windows per neuron"),
    Rule("seq.nonlinear_over_time",
         "Even CCA often fails to find similarity in the hidden state across sequence timesteps: representations "
         "over sequence timesteps are often not linearly similar.",
         "PWCCA's mean beyond-chance similarity between timesteps at least half the window apart.",
         "far_pwcca_corrected", "far_pwcca_corrected < 0.8", "mean beyond-chance PWCCA at lags >= T/2 below 0.8",
         "plateau_reached and windows_per_neuron >= 50",
         _RNN_PREMISE_WORDS + ", and at least 50 probe windows per neuron"),
]

RULES: dict[str, Rule] = {r.id: r for r in _RULES}
