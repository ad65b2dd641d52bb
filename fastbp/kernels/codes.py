"""Integer codes shared by the estimators, the engine and the kernels.

Kernels choose activations, losses and solvers by small integer codes: a Python
function passed to a Numba kernel would be a new type in every process and would
defeat Numba's on-disk cache.
"""

# Activations: their codes and names are the registry in activations.py.

# Losses: their codes, names and matched output activations are the registry in losses.py.

# Solvers. The stochastic ones have a compiled step inside the epoch kernel.
SOLVER_SGD = 0
SOLVER_ADAM = 1
SOLVER_RMSPROP = 2
SOLVER_ADAGRAD = 3
SOLVER_ADAMW = 4
STOCHASTIC_SOLVERS = {
    "sgd": SOLVER_SGD,
    "adam": SOLVER_ADAM,
    "rmsprop": SOLVER_RMSPROP,
    "adagrad": SOLVER_ADAGRAD,
    "adamw": SOLVER_ADAMW,
}
FULL_BATCH_SOLVERS = ("lbfgs", "rprop", "quickprop", "lm")

# Columns of the per-layer tables handed to the kernels.
LAYER_ACTIVATION = 0  # int table: activation code
LAYER_PIECES = 1  # int table: maxout pieces (1 for other activations)
N_LAYER_INT = 2
LAYER_SLOPE = 0  # float table: leaky_relu's negative slope
LAYER_DROPOUT = 1  # float table: dropout rate on the layer's output
N_LAYER_FLOAT = 2

# Positions in the integer configuration vector.
I_LOSS = 0
I_POISSON_CONSTANT = 1  # 1: Poisson loss as half deviance (adds xlogy(y, y) - y)
I_HAS_SAMPLE_WEIGHT = 2
I_SPARSE = 3  # 1: X is given as CSR arrays
I_SOLVER = 4
I_NESTEROV = 5
I_DROPOUT = 6  # 1: some layer has dropout (training passes only)
I_SEED = 7  # seed of the dropout masks
I_GEMM_SPLIT = 8  # products of more than this many multiply-adds, up to twice that, run as two (0: never)
I_NO_THREADS = 9  # 1: launch no parallel kernel (Numba's threads cannot start in this process: engine.cpu)
N_ICONFIG = 10

# Positions in the float configuration vector.
F_ALPHA = 0  # L2 penalty
F_L1 = 1  # L1 penalty
F_LEARNING_RATE = 2
F_MOMENTUM = 3
F_BETA_1 = 4
F_BETA_2 = 5
F_EPSILON = 6  # Adam's / RMSProp's / Adagrad's epsilon
F_CLIP = 7  # probabilities are clipped to [clip, 1 - clip] in the log losses
F_HUBER_DELTA = 8
F_WEIGHT_DECAY = 9  # AdamW's decoupled weight decay
F_RHO = 10  # RMSProp's decay
N_FCONFIG = 11

# Positions in the counters vector the kernels update.
C_ADAM_STEP = 0
C_BATCH = 1  # batches run so far (counter of the dropout masks)
N_COUNTERS = 2
