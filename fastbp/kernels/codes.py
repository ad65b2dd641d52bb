"""Integer codes shared by the estimators, the engine and the kernels.

Kernels choose activations, losses and solvers by small integer codes: a Python
function passed to a Numba kernel would be a new type in every process and would
defeat Numba's on-disk cache.
"""

# Activations: their codes and names are the registry in activations.py.

# Losses: their codes, names and matched output activations are the registry in losses.py.

# Solvers: their codes, names and hyper-parameters (with their slots in the configuration
# vectors below) are the registry in optimizers.py.

# Columns of the per-layer tables handed to the kernels.
LAYER_ACTIVATION = 0  # int table: activation code
LAYER_PIECES = 1  # int table: maxout pieces (1 for other activations)
N_LAYER_INT = 2
LAYER_SLOPE = 0  # float table: leaky_relu's negative slope
LAYER_DROPOUT = 1  # float table: dropout rate on the layer's output
N_LAYER_FLOAT = 2

# Positions in the integer configuration vector; the optimizers' boolean hyper-parameters
# follow them (optimizers.py assigns their slots and N_ICONFIG).
I_LOSS = 0
I_POISSON_CONSTANT = 1  # 1: Poisson loss as half deviance (adds xlogy(y, y) - y)
I_HAS_SAMPLE_WEIGHT = 2
I_SPARSE = 3  # 1: X is given as CSR arrays
I_SOLVER = 4
I_DROPOUT = 5  # 1: some layer has dropout (training passes only)
I_SEED = 6  # seed of the dropout masks
I_GEMM_SPLIT = 7  # products of more than this many multiply-adds, up to twice that, run as two (0: never)
I_NO_THREADS = 8  # 1: launch no parallel kernel (Numba's threads cannot start in this process: engine.cpu)
N_BASE_ICONFIG = 9

# Positions in the float configuration vector; the optimizers' real hyper-parameters follow
# them (optimizers.py assigns their slots and N_FCONFIG).
F_ALPHA = 0  # L2 penalty
F_L1 = 1  # L1 penalty
F_LEARNING_RATE = 2
F_CLIP = 3  # probabilities are clipped to [clip, 1 - clip] in the log losses
F_HUBER_DELTA = 4
N_BASE_FCONFIG = 5

# Positions in the counters vector the kernels update.
C_ADAM_STEP = 0
C_BATCH = 1  # batches run so far (counter of the dropout masks)
N_COUNTERS = 2
