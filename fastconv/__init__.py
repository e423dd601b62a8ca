"""fastconv: fast CPU training and inference of convolutional networks, Keras-style."""
__version__ = "0.1.0"

from .backend import get_backend, get_num_threads, set_backend, set_num_threads, use_backend
from .info import show_config

from . import callbacks, layers, losses, metrics, models, optimizers, regularizers
from . import applications, wrappers
from .models import Sequential
