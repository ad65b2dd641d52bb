"""fastbp quickstart: switching from scikit-learn is one import.

    python examples/quickstart.py

Runs headless in seconds on data bundled with scikit-learn (no download): a classifier on the
breast-cancer data set and a regressor on the diabetes data set, each in a Pipeline with a
StandardScaler, exactly as one would write it with scikit-learn.
"""

import time
import warnings

from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# from sklearn.neural_network import MLPClassifier, MLPRegressor   # before
from fastbp import MLPClassifier, MLPRegressor  # after: the only line that changes

warnings.filterwarnings("ignore", category=ConvergenceWarning)

# --- classification: breast cancer (569 samples, 30 features, 2 classes) --------------------
X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

clf = make_pipeline(
    StandardScaler(),
    MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0),
)
t0 = time.perf_counter()
clf.fit(X_train, y_train)  # the first fit also compiles fastbp's kernels (cached on disk)
fit_s = time.perf_counter() - t0
mlp = clf[-1]
print("MLPClassifier on breast cancer")
print(f"  fit: {fit_s:.2f} s (first fit includes compilation), {mlp.n_iter_} epochs, loss {mlp.loss_:.4f}")
print(f"  train accuracy {clf.score(X_train, y_train):.4f}   test accuracy {clf.score(X_test, y_test):.4f}")
print(f"  predict_proba of the first test sample: {clf.predict_proba(X_test[:1]).round(4)[0]}")
scores = cross_val_score(clf, X, y, cv=5)
print(f"  5-fold CV accuracy {scores.mean():.4f} ± {scores.std():.4f}")

# --- regression: diabetes (442 samples, 10 features) ------------------------------------------
X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

reg = make_pipeline(
    StandardScaler(),
    MLPRegressor(
        hidden_layer_sizes=(16,),
        learning_rate_init=0.01,
        max_iter=1000,
        early_stopping=True,  # holds out 10% of the training data, stops when it stops improving
        random_state=0,
    ),
)
t0 = time.perf_counter()
reg.fit(X_train, y_train)
fit_s = time.perf_counter() - t0
print("MLPRegressor on diabetes")
print(f"  fit: {fit_s:.2f} s, {reg[-1].n_iter_} epochs (early stopping)")
print(f"  train R^2 {reg.score(X_train, y_train):.4f}   test R^2 {reg.score(X_test, y_test):.4f}")
ridge = make_pipeline(StandardScaler(), Ridge()).fit(X_train, y_train)
print(f"  (a linear model for reference: test R^2 {ridge.score(X_test, y_test):.4f}; the data are noisy)")
