"""The tolerances the VGG experiment's measurements are judged by (:mod:`lrdecay.empirics.analysis` measures,
a report compares), each with the reason for its value; :mod:`lrdecay.empirics.analysis` re-exports them."""
# issue's threshold) leaves room for a handful of examples that SGD at the large rate keeps flipping.
REGIME_MIN_TRAIN_ACC = 0.99
# vgg.regime. "At a plateau": at the first decay epoch the train loss is within this factor of its
# minimum over the whole large-rate phase. A path still descending (Phase I) is many times above its
# final floor; a factor 2 admits the fluctuations of the SGD noise floor in Phase II, not a descent.
REGIME_MAX_LOSS_RATIO = 2.0
# ... both sides of that ratio are means over this many consecutive evaluations (the value at the decay
# epoch: the window ending there; the minimum: the smallest such window). At the large rate the iterate
# oscillates across the valley (the normal-space Ornstein–Uhlenbeck picture of docs/science.md §1), so single
# evaluations of its train loss scatter over a factor of several; the plateau is a level of that scatter.
REGIME_WINDOW = 5
# vgg.late_decay and vgg.curvature: two-sided confidence of the intervals.
CONFIDENCE = 0.95
# vgg.late_decay. A subpath's value is the mean of its last LAST_K evaluations (the authors average the
# last 100 of theirs): a single final evaluation of a path at a small rate still scatters by several
# times the differences being compared.
LAST_K = 10
# The generalization gate of every VGG claim: at the first analysed decay, the main path's test loss
# must lie below the best constant predictor's by at least this fraction of it ...
GATE_MIN_RELATIVE_MARGIN = 0.10
# ... and by more than this many standard errors (over the window of evaluations ending there).
GATE_MIN_SE = 3.0
# The size of benefit the power of the late-decay statistic is stated against: the authors' 8 % of the
# test loss between their earliest and latest branches.
AUTHORS_BENEFIT = 0.08
# vgg.valley, a sublevel-set criterion (as the toy model's landscape is judged): the valley is the
# connected part of {L_train <= VALLEY_LEVEL × the median train loss at the post-landing main path's
# projections} that holds the path. A factor 2 admits the SGD noise floor's scatter along the path (the
# regime's factor 2) and nothing like the climb off the valley (tens of times the floor).
VALLEY_LEVEL = 2.0
# ... it must hold at least this fraction of the post-landing projections (the path runs inside it) ...
VALLEY_MIN_CONTAINED = 0.9
# ... touch at least two sides of the window (it runs through the window along the path) ...
# ... and cover at most this fraction of the window (it is a valley, not a plain: the loss rises off it).
VALLEY_MAX_AREA = 0.5
# Reported beside it: the checkpoints' own train-loss ratio after landing, over windows of this many.
VALLEY_WINDOW = 5
# vgg.test_minimum. "Rises toward every edge": the lowest test loss on each edge of the window exceeds the
# grid's minimum by at least this fraction of the grid's spread (median − minimum), as for the toy model;
# a fraction of the minimum itself (the old rule) is tiny whenever the loss is large and flat.
TEST_MIN_EDGE_MARGIN = 0.05
# vgg.curvature. Phase II's trend is fitted after a settling transient: the first CURVATURE_SETTLE of the
# post-landing span is left out (right after landing the trace still falls with the last of Phase I).
CURVATURE_SETTLE = 0.2
