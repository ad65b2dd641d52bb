"""scikit-learn's estimator checks, with no expected failures."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastbp

if not (hasattr(fastbp, "MLPClassifier") and hasattr(fastbp, "MLPRegressor")):
    pytest.fail("fastbp has no MLPClassifier / MLPRegressor", pytrace=False)

# max_iter=100 as in scikit-learn's own test suite.  The classifier with L-BFGS
# (deterministic, full batch) is what scikit-learn uses for
# check_sample_weight_equivalence; the stochastic solvers see every sample in
# one batch on those small data sets (batch_size='auto' = min(200, n)), so they
# are deterministic there too.
ESTIMATORS = [
    fastbp.MLPClassifier(solver="lbfgs", max_iter=100, random_state=0),
    fastbp.MLPClassifier(solver="adam", max_iter=100, random_state=0),
    fastbp.MLPRegressor(solver="adam", max_iter=100, random_state=0),
    fastbp.MLPRegressor(solver="lbfgs", max_iter=100, random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
