"""toscore: H0 loss barcodes and TO-scores of neural-network loss landscapes.

A companion to Barannikov et al., *Topological obstructions in neural networks
learning*, arXiv:2012.15834.
"""

from .barcode import Barcode, graph_barcode, sample_barcode, to_score
from .datasets import Dataset, dataset_names, load_dataset
from .minima import Minima, initial_parameters, train_minima
from .models import build_model, count_parameters, model_names, register_model
from .objectives import NetworkObjective, flatten_parameters, resolve_device, value_and_grad
from .paths import PATH_METHODS, MinimaBarcode, minima_barcode

__all__ = [
    "Barcode",
    "Dataset",
    "Minima",
    "MinimaBarcode",
    "NetworkObjective",
    "PATH_METHODS",
    "build_model",
    "count_parameters",
    "dataset_names",
    "flatten_parameters",
    "graph_barcode",
    "initial_parameters",
    "load_dataset",
    "minima_barcode",
    "model_names",
    "register_model",
    "resolve_device",
    "sample_barcode",
    "to_score",
    "train_minima",
    "value_and_grad",
]

__version__ = "0.1.0"
