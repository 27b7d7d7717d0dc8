// The parts of torch the native extensions use: ATen's tensors and parallel_for, and torch's pybind11 casters.
// <torch/extension.h> also pulls in libtorch's whole C++ frontend (nn, optim, data), which none of them uses: it
// took about 25 s of each source's 35 s compile, and a machine builds four sources per -march. Header only; the
// build copies it beside each source and hashes it into the build key.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>
