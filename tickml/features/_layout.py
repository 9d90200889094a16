"""Integer constants shared by the compiled kernels: state slots, ring inputs, op codes.

The per-symbol state is two rows, one ``float64`` (``F``) and one ``int64`` (``IS``); the
scalar slots below come first, then the ring/bucket/profile blocks whose offsets depend on the
configuration and travel in the int parameter vector ``P`` (indices ``P_*``). Float parameters
(EWMA factors, thresholds, fracdiff weights) travel in ``PF``.

Kernels (compiled with the options of :mod:`tickml.features._jit`) read these names as
compile-time constants. Numba caches a kernel keyed on its own source file only, so
:mod:`tickml.features._cache` drops the cached kernels whenever any kernel module (this one
included) changes.
"""

from __future__ import annotations

# ---- status codes returned by the update kernel ------------------------------------------
ST_OK = 0
ST_NEED_DAY = 1  # the tick is outside the state's day: the caller resets the day and retries
ST_ROW_DUE = 2  # every-n-ticks mode: a row is due before this tick is applied

# ---- float scalar slots (F) --------------------------------------------------------------
F_BID = 0  # carried book (NaN until a two-sided book has been seen today)
F_ASK = 1
F_BSZ = 2
F_ASZ = 3
F_LAST_PRICE = 4  # last trade price today (NaN before the first trade)
F_LM = 5  # log reference price after the last tick (mid, else last trade price)
F_SPREAD = 6  # spread of the carried book
F_BID_FROM = 7  # bid price before its latest change (quote flicker)
F_ASK_FROM = 8
F_SIZE_EWMA = 9  # EWMA of trade size (adaptive large-trade threshold)
F_R2_EWMA = 10  # EWMA of squared tick returns (regime baseline)
F_TICK_SIGN = 11  # last non-zero tick-rule sign
F_SESS_PV = 12  # session sum(price * size), Neumaier-compensated with F_SESS_PV_C
F_SESS_PV_C = 13
F_SESS_V = 14  # session volume
F_SESS_HI = 15  # session high / low / first of the log reference price
F_SESS_LO = 16
F_SESS_OPEN_LM = 17
F_PROF_ANCHOR = 18  # price of the volume profile's centre bin
F_DAY_V = 19  # volume today
F_STREAK = 20  # signed run length of same-direction reference-price moves
F_TSTREAK = 21  # signed run length of same-side trades (quote-rule sign)
F_LR_SIGN = 22  # quote-rule sign of the last trade
N_F_SCALARS = 23

# ---- int scalar slots (IS) ---------------------------------------------------------------
I_DAY_START = 0  # the day is (I_DAY_START, I_DAY_END] in UTC ns
I_DAY_END = 1
I_OPEN = 2  # regular session (I_OPEN, I_CLOSE]
I_CLOSE = 3
I_FIRST_TS = 4  # first / last tick of the day (-1 none)
I_LAST_TS = 5
I_N_EV = 6  # events pushed to the event ring today
I_EV_POS = 7  # ring position of the newest event
I_N_TR = 8
I_TR_POS = 9
I_SEC_CUR = 10  # newest second bucket index of the day (-1 none)
I_BAR_CUR = 11  # newest bar index of the day (-1 none)
I_N_TICKS = 12  # ticks applied today
I_SINCE_ROW = 13  # ticks since the last every-n row
I_PENDING = 14  # 1 when an every-n row is due at the next later timestamp
I_POC = 15  # volume-profile bin with the most volume (-1 none)
I_PROF_LO = 16  # lowest / highest profile bin with volume
I_PROF_HI = 17
I_IS_LEADER = 18  # 1 for the cross-asset leader: its bar closes go to the leader array
I_HAS_BOOK = 19  # 1 once a two-sided book has been seen today
I_SEC_FIRST = 20  # second bucket of the first tick of the day
I_EV_BOOK0 = 21  # events pushed before the first one with a book (-1: no book yet)
N_I_SCALARS = 22

# ---- event ring inputs (one value per tick with a reference price) -------------------------
E_LM = 0  # log reference price
E_R = 1  # log return since the previous tick
E_VOL = 2  # trade size (0 on quotes)
E_SVT = 3  # tick-rule signed trade size
E_SVQ = 4  # quote-rule (Lee-Ready) signed trade size
E_SPR = 5  # spread, bps of mid
E_IMB = 6  # (bid_size - ask_size) / (bid_size + ask_size)
E_MDEV = 7  # microprice - mid, bps of mid
E_OFI = 8  # order-flow imbalance (Cont-Kukanov-Stoikov), shares
E_DEP = 9  # bid_size + ask_size
E_BACC = 10  # bid size change at an unchanged bid price
E_AACC = 11  # ask size change at an unchanged ask price
E_QFLAG = 12  # 1 if the book changed
E_PCHG = 13  # number of book sides whose price changed (0..2)
E_FLICK = 14  # number of side price changes that revert the previous change (0..2)
E_WIDEN = 15  # sign of the spread change
E_QDRIFT = 16  # (sign(d bid) + sign(d ask)) / 2
E_LVOL = 17  # size of a large trade (0 otherwise)
N_EV_INPUTS = 18
BOOK_INPUTS = (E_SPR, E_IMB, E_MDEV, E_DEP)  # NaN until the day's first two-sided book

# ---- trade ring inputs (one value per trade) -------------------------------------------
T_SIZE = 0
T_SSV = 1  # quote-rule signed size
T_BUY = 2  # 1 if buyer-initiated (quote rule)
T_LVOL = 3  # size if large else 0
T_LSV = 4  # signed size if large else 0
N_TR_INPUTS = 5

# ---- prefix moments of a ring input from age 0 to a checkpoint age (snapshot scratch) ----
MO_S1 = 0  # sum of x
MO_Y1 = 1  # sum of y = x - x(age 0)
MO_Y2 = 2  # sum of y^2
MO_Y3 = 3  # sum of y^3
MO_YA = 4  # sum of age * y
MO_ABS = 5  # sum of |x|
MO_SGN = 6  # sum of sign(x)
MO_MIN = 7  # min of x
MO_MAX = 8  # max of x
MO_R2 = 9  # sum of x^2
N_MOM = 10
# which prefix moments an input needs (bit flags, set by the program compiler)
NEED_SUM = 1  # MO_S1
NEED_VAR = 2  # MO_Y1, MO_Y2
NEED_SLOPE = 4  # MO_YA (with NEED_VAR)
NEED_SKEW = 8  # MO_Y3 (with NEED_VAR)
NEED_ABS = 16  # MO_ABS, MO_SGN
NEED_MINMAX = 32  # MO_MIN, MO_MAX
NEED_R2 = 64  # MO_R2
NEED_SCAN = 128  # read the values (order statistics, levels); else sums come from cum rings

# every ring input keeps three rings of `cap` slots: its values (input-major), and the
# day-cumulative sums of its values and of their squares after each tick (slot-major; NaN
# values count as 0 in the sums); after them the newest value of every input

# ---- one-second bucket stats (cumulative over the day to the bucket's end) ----------------
S_NEV = 0
S_NTR = 1
S_NQ = 2
S_VOL = 3
S_SVQ = 4
S_OFI = 5
S_R2 = 6
S_CLOSE = 7  # log reference price at the bucket's end (carried)
N_SEC_STATS = 8

# ---- bar stats (bar = the sampling interval) ---------------------------------------------
B_CLOSE = 0
B_HIGH = 1
B_LOW = 2
B_VOL = 3
B_NEV = 4
N_BAR_STATS = 5

# ---- int parameters (P) ------------------------------------------------------------------
P_NF = 0  # length of a float state row
P_NI = 1
P_EV_CAP = 2
P_EV_OFF = 3
P_TR_CAP = 4
P_TR_OFF = 5
P_SEC_CAP = 6
P_SEC_OFF = 7
P_BAR_CAP = 8
P_BAR_OFF = 9
P_BAR_NS = 10
P_PROF_BINS = 11
P_PROF_OFF = 12
P_EVERY_N = 13  # 0: interval sampling
P_SESSION_ONLY = 14
P_FD_BAR_W = 15
P_FD_BAR_OFF = 16  # offset of the bar fracdiff weights in PF
P_FD_TICK_W = 17
P_FD_TICK_OFF = 18
P_N_BLOCKS = 19
P_BLOCK_SIZE = 20
P_CROSS_M = 21  # bars of history gathered for the cross-asset ops (0: none)
P_BAR_M = 22  # bars of own history gathered at snapshot time
P_NCK_EV = 23  # number of moment checkpoints of the event / trade ring
P_NCK_TR = 24
P_MAX_CK = 25  # row length of the checkpoint table
P_W_MOM = 26  # offsets in the snapshot scratch buffer
P_W_BARS = 27
P_W_CROSS = 28
P_W_SIZE = 29
P_NTW = 30  # number of time windows (ck row 2 holds them, in seconds)
P_W_TIME = 31
P_W_BLK = 32  # scratch for per-block values
P_W_MOM_TR = 33  # moments of the trade ring (P_W_MOM: of the event ring)
N_P = 34
P_PUSH_EV = N_P  # then PUSH_* flags of each event input, then of each trade input
P_PUSH_TR = N_P + N_EV_INPUTS
P_LEN = N_P + N_EV_INPUTS + N_TR_INPUTS
PUSH_X = 1  # keep the input's past values (it is scanned or read at an age > 0)
PUSH_C2 = 2  # keep the cumulative sum of its squares (its variance comes from the sums)

# ---- float parameters (PF) ---------------------------------------------------------------
PF_SIZE_ALPHA = 0
PF_LARGE_MULT = 1
PF_LARGE_SIZE = 2  # NaN: adaptive threshold
PF_VOL_ALPHA = 3
PF_PROF_TICK = 4
PF_VALUE_AREA = 5
N_PF = 6

# ---- feature op codes --------------------------------------------------------------------
# ring-window ops: ring (0 event, 1 trade), input a, ages [start, end)
OP_RET = 1  # (x[start] - x[end]) * scale
OP_MEAN = 2
OP_STD = 3
OP_SUMRATIO = 4  # (sum a - sum c) / (sum b - sum d); 0 on a zero denominator
OP_SUM_OVER_MEAN = 5  # sum a / mean b
OP_SLOPE = 6
OP_RANGE = 7
OP_RANGEPOS = 8
OP_SIGNBAL = 9
OP_EFFICIENCY = 10
OP_ZLAST = 11
OP_TSTAT = 12
OP_SKEW = 13
OP_MAXOVERMEAN = 14
OP_LAST = 15
OP_BLOCK_Z = 16  # z-score of block `start`'s sum among n_blocks blocks
OP_BLOCK_CONSIST = 17  # sum of block slopes / sum of |block slopes|
OP_BLOCK_VOLSLOPE = 18  # slope of the block stds across blocks / their mean
OP_VAR_RATIO = 19  # mean squared block return / (block size * mean squared tick return)
OP_VOL_REGIME = 20  # mean block std / sqrt(EWMA r^2)
OP_FRACDIFF_TICK = 21
# state scalars
OP_STREAK = 30
OP_TSTREAK = 31
OP_SINCE_LAST = 32
OP_DEPTH_LOGRATIO = 33
# time buckets: stat a (b), window `start` seconds
OP_TW_RET = 40
OP_TW_SQRT = 41
OP_TW_RATIO = 42
OP_TW_RATE = 43
OP_TW_VOLREL = 44
OP_TW_OVER_DEPTH = 45
OP_TW_LOGRATIO = 46
OP_TW_RVREL = 47  # realized vol rate over the window / the day's realized vol rate
OP_TW_SVREL = 48  # signed volume rate over the window / the day's volume rate
OP_TW_RETDAY = 49  # return over the window / (day's realized vol rate x sqrt(window))
# bars
OP_BAR_RET = 50
OP_ATR = 51
OP_BAR_VOLZ = 52
OP_FRACDIFF_BAR = 53
OP_BAR_NEV = 54
# session
OP_MIN_SINCE_OPEN = 60
OP_MIN_TO_CLOSE = 61
OP_TOD_SIN = 62
OP_TOD_COS = 63
OP_VWAP_DEV = 64
OP_SESS_RET = 65
OP_SESS_RANGE = 66
OP_SESS_RANGEPOS = 67
OP_POC_DIST = 68
OP_VA_WIDTH = 69
OP_VA_POS = 70
OP_SESS_LOGVOL = 71
# cross-asset (bars): lag / window in start, end
OP_LEAD_RET = 80
OP_CORR = 81
OP_BETA = 82
OP_LEADCORR = 83
OP_RESID_RET = 84
# combinations of earlier features (refs)
OP_REF_RATIO = 90
OP_REF_DIFF = 91
OP_REF_MEANTANH = 92
OP_REF_REGIME = 93

# program columns
C_OP = 0
C_RING = 1
C_A = 2
C_B = 3
C_C = 4
C_D = 5
C_START = 6
C_END = 7
C_REF_OFF = 8
C_REF_LEN = 9
C_SI = 10  # checkpoint index of the window start / end (ring ops)
C_EI = 11
N_C = 12
