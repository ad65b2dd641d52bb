"""Integer codes shared by the estimators, the engine and the kernels.

Kernels choose activations, losses and solvers by small integer codes: a Python
function passed to a Numba kernel would be a new type in every process and would
defeat Numba's on-disk cache.
"""

# Activations. Hidden layers use the first four; the output layer uses
# identity, logistic, softmax or exp.
ACT_IDENTITY = 0
ACT_LOGISTIC = 1
ACT_TANH = 2
ACT_RELU = 3
ACT_SOFTMAX = 4
ACT_EXP = 5

HIDDEN_ACTIVATIONS = {
    "identity": ACT_IDENTITY,
    "logistic": ACT_LOGISTIC,
    "tanh": ACT_TANH,
    "relu": ACT_RELU,
}
OUTPUT_ACTIVATIONS = {
    "identity": ACT_IDENTITY,
    "logistic": ACT_LOGISTIC,
    "softmax": ACT_SOFTMAX,
    "exp": ACT_EXP,
}

# Losses, each matched with the output activation that makes the output delta
# dL/dz = y_pred - y.
LOSS_SQUARED_ERROR = 0
LOSS_LOG_LOSS = 1  # softmax + categorical cross-entropy
LOSS_BINARY_LOG_LOSS = 2  # logistic + binary cross-entropy (binary, multilabel)
LOSS_POISSON = 3  # exp + Poisson

# (output activation, loss name) -> loss code: the matched pairs.
MATCHED_LOSSES = {
    ("identity", "squared_error"): LOSS_SQUARED_ERROR,
    ("softmax", "log_loss"): LOSS_LOG_LOSS,
    ("logistic", "log_loss"): LOSS_BINARY_LOG_LOSS,
    ("exp", "poisson"): LOSS_POISSON,
}

# Solvers with a compiled step.
SOLVER_SGD = 0
SOLVER_ADAM = 1
STOCHASTIC_SOLVERS = {"sgd": SOLVER_SGD, "adam": SOLVER_ADAM}

# Positions in the integer configuration vector handed to the kernels.
I_HIDDEN = 0  # hidden activation code
I_OUTPUT = 1  # output activation code
I_LOSS = 2  # loss code
I_POISSON_CONSTANT = 3  # 1: Poisson loss as half deviance (adds xlogy(y, y) - y)
I_HAS_SAMPLE_WEIGHT = 4
I_SPARSE = 5  # 1: X is given as CSR arrays
I_SOLVER = 6
I_NESTEROV = 7
N_ICONFIG = 8

# Positions in the float configuration vector.
F_ALPHA = 0  # L2 penalty
F_LEARNING_RATE = 1
F_MOMENTUM = 2
F_BETA_1 = 3
F_BETA_2 = 4
F_EPSILON = 5  # Adam's epsilon
F_CLIP = 6  # probabilities are clipped to [clip, 1 - clip] in the log losses
N_FCONFIG = 7
