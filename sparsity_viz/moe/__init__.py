"""Mixture-of-experts: a routed MLP, top-k gating, the balance loss, conditional compute measured.

``routing``: the router, ``route`` (top-1 / top-2 gating) and ``balance_loss``.
``model``: ``MoEMLP`` (the conditional forward) and its dense-gated reference.
``compute``: active parameters, FLOPs per input, timing against all-experts and a dense MLP.
``training``: ``train_moe`` / ``MoEAuxLossHook`` (the balance loss inside ``training.train``).
``report``: class x expert routing table and the JSON the ``experts`` command prints.
``edit``: copies with another top-k, pruned experts / expert weights, a short fine-tune with masks held.
``expert_map``: the router's choice over a 2-D input plane (the toy's expert regions).
"""

from .compute import (active_parameters, compare_compute, dense_counterpart, expert_parameters, flops_per_input,
                      mlp_flops_per_input, time_forwards, total_parameters)
from .edit import check_experts, finetune_moe, finetune_moe_run, moe_strategy_names, prune_moe, with_top_k
from .expert_map import ExpertMap, expert_map
from .model import (MOE_ARCHITECTURES, MoEMLP, MoESpec, conditional_forward, dense_gated_forward, expert_masks,
                    expert_parameter_names, get_moe_spec, routing)
from .report import expert_report, routing_frame, routing_table
from .routing import Router, Routing, balance_loss, route
from .training import DEFAULT_BALANCE_WEIGHT, MoEAuxLossHook, train_moe

__all__ = [
    "DEFAULT_BALANCE_WEIGHT", "ExpertMap", "MOE_ARCHITECTURES", "check_experts", "expert_map", "finetune_moe",
    "finetune_moe_run", "moe_strategy_names", "prune_moe", "with_top_k", "MoEAuxLossHook", "MoEMLP", "MoESpec",
    "Router", "Routing",
    "active_parameters", "balance_loss", "compare_compute", "conditional_forward", "dense_counterpart",
    "dense_gated_forward", "expert_masks", "expert_parameter_names", "expert_parameters", "expert_report",
    "flops_per_input", "get_moe_spec", "mlp_flops_per_input", "route", "routing", "routing_frame", "routing_table",
    "time_forwards", "total_parameters", "train_moe",
]
