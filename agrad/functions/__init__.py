"""agrad's differentiable functions (``import agrad.functions as F``), DeZero's names and more."""

from agrad.functions.activation import *  # noqa: F403
from agrad.functions.arithmetic import *  # noqa: F403
from agrad.functions.casting import *  # noqa: F403
from agrad.functions.conv import *  # noqa: F403
from agrad.functions.einsum import *  # noqa: F403
from agrad.functions.elementwise import *  # noqa: F403
from agrad.functions.indexing import *  # noqa: F403
from agrad.functions.linalg import *  # noqa: F403
from agrad.functions.loss import *  # noqa: F403
from agrad.functions.reduction import *  # noqa: F403
from agrad.functions.regularization import *  # noqa: F403
from agrad.functions.shape import *  # noqa: F403
from agrad.functions.transformer import *  # noqa: F403
