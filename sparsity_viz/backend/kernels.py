"""The native CPU kernel: compiled once per machine, cached, with a pure-torch fallback.

``csrc/sparse_kernels.cpp`` is built with ``torch.utils.cpp_extension.load`` the first
time a native kernel is needed (about 30-60 s), into a cache directory keyed by a hash
of the source, the compiler flags, the torch version and the CPU model, so a build made
with ``-march=native`` is never reused on another CPU (``SPARSITY_VIZ_MARCH=x86-64-v3`` builds for another target
instead: AVX2 without AVX-512, the code paths such CPUs run, which a test builds and checks here). The extensions
are built with ``-fopenmp`` so that ``at::parallel_for`` (header-inline ``#pragma omp parallel`` under
torch's OpenMP backend) runs on torch's own intra-op pool: the library links against
``libgomp.so.1`` and the loader reuses the copy torch already loaded (same soname), so no
second OpenMP runtime starts (``openmp_runtimes()`` lists them; see docs/backend.md#build).

Any checkout of the same source shares one build: the source is copied into the cache
directory and compiled from there (the ninja file names no checkout path), a ``.built``
marker is written once the library is linked, and a later process that finds the marker
imports the finished library directly, without ninja (milliseconds). A killed build
leaves no marker, so the next process rebuilds.

Builds are serialised between processes by an ``flock`` on ``<cache>/.build.lock``,
which the OS releases when a process dies; a process that waited finds the marker and
imports what the first one built. torch's own ``lock`` file is not released that way:
a build killed half-way leaves it behind and every later ``load`` would wait on it
forever, so it is removed while the flock is held. The live app never waits for a first
build: ``ready()`` says whether loading is instant, and ``build_in_background()``
compiles on a daemon thread meanwhile.

Where no compiler (or ninja) is available, or ``SPARSITY_VIZ_NATIVE=0`` is set, every
caller gets the fallback, ``torch.addmm(bias, csr_weight, x)`` on feature-major
activations, and ``notice()`` holds a one-line explanation (also issued once as a
``RuntimeWarning``).

Other C++ sources (``csrc/int8_kernels.cpp``) get the same treatment through an
``Extension(source, prefix, what)`` object with its own ``load`` / ``ready`` /
``build_in_background`` / ``notice``: its own cache directory (keyed by its own source), so
editing one source never invalidates the other's build.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import platform
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).resolve().parent / "csrc" / "sparse_kernels.cpp"
ENV_MARCH = "SPARSITY_VIZ_MARCH"  # another -march than this CPU's (x86-64-v3: AVX2, no AVX-512), e.g. for a test


def _march() -> str:
    """The ``-march`` the extensions are built for: this CPU (``native``) unless ``SPARSITY_VIZ_MARCH`` names another
    (letters, digits, ``-``, ``_`` and ``.`` only: it becomes a compiler flag)."""
    march = os.environ.get(ENV_MARCH, "").strip() or "native"
    if not all(c.isalnum() or c in "-_." for c in march):
        raise ValueError(f"{ENV_MARCH}={march!r} is not a -march value")
    return march


CFLAGS = ["-O3", f"-march={_march()}", "-mprefer-vector-width=512", "-fopenmp-simd", "-fno-math-errno", "-fopenmp"]
LDFLAGS = ["-fopenmp"]  # links libgomp.so.1: resolved to torch's already-loaded copy at import
ENV_SWITCH = "SPARSITY_VIZ_NATIVE"  # "0" forces the pure-torch fallback
ENV_CACHE = "SPARSITY_VIZ_EXT_DIR"  # overrides the build cache root
MAIN_PREFIX = "sparsity_viz_kernels"  # the module name of the main build is MAIN_PREFIX_<key>
MARKER = ".built"  # written in the cache directory once the library is complete
LIB_EXT = ".so"  # what torch.utils.cpp_extension links on Linux and macOS (fcntl rules out Windows)

_lock = threading.Lock()  # held by load() for the whole build
_start_lock = threading.Lock()  # starting the background build (never waits for the build itself)
_module: ModuleType | None = None
_notice: str | None = None
_origin: str | None = None
_tried = False
_background: threading.Thread | None = None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def headers() -> list[Path]:
    """The shared headers of the native sources (``csrc/*.h``), which every build copies beside its source and
    hashes with it (also a variant's source outside ``csrc``, as ``benchmarks/kernel_ab.py`` builds them)."""
    return sorted(SOURCE.parent.glob("*.h"))


def build_key(source: Path | None = None) -> str:
    """Hash of everything that makes a build reusable: source and headers, flags, torch, Python, CPU."""
    source = SOURCE if source is None else Path(source)
    h = hashlib.sha256()
    h.update(source.read_bytes())
    for header in headers():
        h.update(header.name.encode())
        h.update(header.read_bytes())
    h.update(" ".join(CFLAGS + LDFLAGS).encode())
    h.update(torch.__version__.encode())
    h.update(platform.python_version().encode())
    h.update(_cpu_model().encode())
    return h.hexdigest()[:16]


def cache_dir(source: Path | None = None) -> Path:
    """Where the extension of ``source`` (default ``SOURCE``) is built and cached (``~/.cache/sparsity_viz/ext/<key>``)."""
    root = os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "sparsity_viz" / "ext"
    return Path(root) / build_key(source)


def _name(build: Path, prefix: str = MAIN_PREFIX) -> str:
    return f"{prefix}_{build.name}"


def library_path(build: Path | None = None, prefix: str = MAIN_PREFIX) -> Path:
    """The built shared library in ``build`` (default: this machine's ``cache_dir()``)."""
    build = cache_dir() if build is None else build
    return build / f"{_name(build, prefix)}{LIB_EXT}"


def built(build: Path | None = None, prefix: str = MAIN_PREFIX) -> bool:
    """True when a finished build is on disk (the marker and the library both exist)."""
    build = cache_dir() if build is None else build
    return (build / MARKER).exists() and library_path(build, prefix).exists()


def native_disabled() -> bool:
    """True when the environment forces the pure-torch fallback."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off")


def _import_built(build: Path, prefix: str = MAIN_PREFIX) -> ModuleType:
    """Import the finished library directly: no ninja, no checkout paths involved."""
    spec = importlib.util.spec_from_file_location(_name(build, prefix), library_path(build, prefix))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {library_path(build, prefix)}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compile(build: Path, origin_source: Path | None = None, prefix: str = MAIN_PREFIX) -> ModuleType:
    """Copy the source into ``build`` and compile it there; mark the build finished."""
    from torch.utils import cpp_extension

    origin_source = SOURCE if origin_source is None else Path(origin_source)
    (build / MARKER).unlink(missing_ok=True)
    library_path(build, prefix).unlink(missing_ok=True)  # maybe half-written by a killed link: relink (about 1 s)
    for original in [*headers(), origin_source]:  # the headers first: the source includes them
        copy = build / original.name
        code = original.read_bytes()
        if not copy.exists() or copy.read_bytes() != code:
            staged = copy.with_name(copy.name + ".tmp")
            staged.write_bytes(code)
            staged.replace(copy)
    source = build / origin_source.name
    module = cpp_extension.load(
        name=_name(build, prefix),
        sources=[str(source)],
        extra_cflags=list(CFLAGS),  # copies: torch appends to the lists it is given, which would change
        extra_ldflags=list(LDFLAGS),  # build_key() (hashed from them) after a build
        build_directory=str(build),
        verbose=False,
    )
    (build / MARKER).write_text(f"{library_path(build, prefix).name}\n")
    return module


def _load_or_compile(build: Path, source: Path | None = None, prefix: str = MAIN_PREFIX) -> tuple[ModuleType, str]:
    """Import a finished build, else (or if that import fails) compile one; say which."""
    if built(build, prefix):
        try:
            return _import_built(build, prefix), "cached"
        except ImportError:
            pass  # a damaged library: rebuild it below
    return _compile(build, source, prefix), "built"


def _locked_load(source: Path | None = None, prefix: str = MAIN_PREFIX) -> tuple[ModuleType, str]:
    """Load or build ``source`` in its cache directory under the inter-process ``flock``; raises on failure."""
    build = cache_dir(source)
    build.mkdir(parents=True, exist_ok=True)
    with open(build / ".build.lock", "w") as guard, warnings.catch_warnings():
        fcntl.flock(guard, fcntl.LOCK_EX)  # one builder per cache dir; freed if we die
        (build / "lock").unlink(missing_ok=True)  # torch's baton: stale if nobody holds our flock
        warnings.simplefilter("ignore")
        return _load_or_compile(build, source, prefix)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def load(force_fallback: bool = False) -> ModuleType | None:
    """The compiled extension, or None (fallback) with ``notice()`` saying why."""
    global _module, _notice, _origin, _tried
    if force_fallback or native_disabled():
        return None
    if _tried:
        return _module
    with _lock:
        if _tried:
            return _module
        try:
            _module, _origin = _locked_load()
        except Exception as exc:  # no compiler, no ninja, bad headers...
            _module, _origin = None, None
            _notice = (f"sparsity_viz: native sparse kernels unavailable ({_first_line(exc)}); "
                       "using the pure-torch fallback.")
            warnings.warn(_notice, RuntimeWarning, stacklevel=2)
        _tried = True
    return _module


def openmp_runtimes() -> list[str]:
    """The OpenMP runtime libraries mapped into this process (one: torch's, when the kernels share its pool)."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    names = ("libgomp", "libiomp", "libomp")
    return sorted({ln.split()[-1] for ln in lines if any(n in ln.rsplit("/", 1)[-1] for n in names)})


_PAUSE: object = None  # omp_pause_resource_all of the process's OpenMP runtime; False when it has none


def release_openmp_threads() -> bool:
    """Let the calling thread's OpenMP workers go now (``omp_pause_resource_all(omp_pause_soft)``, OpenMP 5).

    After a parallel region libgomp's idle workers spin for a while (300,000 spins by default) before they
    sleep; with the other core busy, that spinning worker takes turns with the next 1-thread call, which then
    runs up to 1.5x slower ("The guard under load" in docs/backend.md). Releasing them costs tens of
    microseconds now and as much again when the next parallel region starts them. False when the runtime
    has no such call (or refused: inside a parallel region).
    """
    global _PAUSE
    if _PAUSE is None:
        import ctypes

        _PAUSE = False
        for path in openmp_runtimes():
            try:
                fn = ctypes.CDLL(path).omp_pause_resource_all
            except (OSError, AttributeError):
                continue
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            _PAUSE = fn
            break
    return bool(_PAUSE) and _PAUSE(1) == 0  # 1: omp_pause_soft


def origin() -> str | None:
    """How this process got the kernel: ``"built"``, ``"cached"`` (finished build imported), or None."""
    return _origin


def loaded() -> ModuleType | None:
    """The extension if this process has loaded it already, else None; never builds, loads or waits."""
    return _module


def ready() -> bool:
    """True when ``load()`` returns at once: already loaded, disabled, failed, or built on disk."""
    if _tried or native_disabled():
        return True
    return built()


def build_in_background() -> None:
    """Start compiling the extension on a daemon thread (once); ``ready()`` turns True when done.

    Never waits for the build: it takes ``_start_lock``, not ``_lock``, which ``load()`` holds while compiling.
    """
    global _background
    with _start_lock:
        if _tried or (_background is not None and _background.is_alive()):
            return
        _background = threading.Thread(target=load, name="sparsity_viz-kernel-build", daemon=True)
        _background.start()


def available(force_fallback: bool = False) -> bool:
    """True when the native kernel can be used (compiling it on first call)."""
    return load(force_fallback) is not None


def available_now() -> bool:
    """True when the native kernel can be used without waiting for a build (never starts one).

    For the live paths (a slider step): while the kernel is not built yet they take their torch route.
    """
    return ready() and available()


def notice() -> str | None:
    """One line explaining why the fallback is in use, or None."""
    if native_disabled():
        return f"sparsity_viz: native sparse kernels disabled by {ENV_SWITCH}=0; using the pure-torch fallback."
    return _notice


class Extension:
    """Another C++ source built like the main kernel: once per machine, cached by its own key, flock, marker.

    ``load()`` returns the module or None (fallback, ``notice()`` says why, once as a
    ``RuntimeWarning``); ``ready()`` is True when ``load()`` returns at once;
    ``build_in_background()`` compiles on a daemon thread. ``SPARSITY_VIZ_NATIVE=0`` disables it too.
    """

    def __init__(self, source: Path, prefix: str, what: str):
        self.source, self.prefix, self.what = Path(source), prefix, what
        self._lock = threading.Lock()  # held by load() for the whole build
        self._start_lock = threading.Lock()  # starting the background build
        self._module: ModuleType | None = None
        self._notice: str | None = None
        self._origin: str | None = None
        self._tried = False
        self._background: threading.Thread | None = None

    def cache_dir(self) -> Path:
        return cache_dir(self.source)

    def library_path(self) -> Path:
        return library_path(self.cache_dir(), self.prefix)

    def built(self) -> bool:
        return built(self.cache_dir(), self.prefix)

    def load(self, force_fallback: bool = False) -> ModuleType | None:
        """The compiled extension (building it on first call), or None with ``notice()`` saying why."""
        if force_fallback or native_disabled():
            return None
        if self._tried:
            return self._module
        with self._lock:
            if self._tried:
                return self._module
            try:
                self._module, self._origin = _locked_load(self.source, self.prefix)
            except Exception as exc:  # no compiler, no ninja, bad headers...
                self._module, self._origin = None, None
                self._notice = (f"sparsity_viz: {self.what} unavailable ({_first_line(exc)}); "
                                "using the pure-torch fallback.")
                warnings.warn(self._notice, RuntimeWarning, stacklevel=2)
            self._tried = True
        return self._module

    def origin(self) -> str | None:
        """``"built"``, ``"cached"`` or None (not loaded / fallback)."""
        return self._origin

    def ready(self) -> bool:
        """True when ``load()`` returns at once: already loaded, disabled, failed, or built on disk."""
        if self._tried or native_disabled():
            return True
        return self.built()

    def build_in_background(self) -> None:
        """Start compiling on a daemon thread (once); ``ready()`` turns True when done."""
        with self._start_lock:  # not self._lock, which load() holds for the whole build: never wait for it
            if self._tried or (self._background is not None and self._background.is_alive()):
                return
            self._background = threading.Thread(target=self.load, name=f"{self.prefix}-build", daemon=True)
            self._background.start()

    def available(self, force_fallback: bool = False) -> bool:
        return self.load(force_fallback) is not None

    def notice(self) -> str | None:
        """One line explaining why the fallback is in use, or None."""
        if native_disabled():
            return f"sparsity_viz: {self.what} disabled by {ENV_SWITCH}=0; using the pure-torch fallback."
        return self._notice

    def unavailable_reason(self, force_fallback: bool = False) -> str | None:
        """None when the extension can run now; otherwise why not. Never waits: a missing build is
        started in the background and reported as being built."""
        if force_fallback:
            return "native kernels disabled (force_fallback)"
        if native_disabled():
            return self.notice()
        if not self.ready():
            self.build_in_background()
            return f"the {self.what} are being built in the background (about a minute); try again then"
        if not self.available():
            return self.notice() or f"{self.what} unavailable"
        return None


def _require() -> ModuleType:
    """The loaded extension, or a RuntimeError saying why there is none."""
    mod = load()
    if mod is None:
        raise RuntimeError(notice() or "native kernels are not available")
    return mod


def panelize(rowptr: torch.Tensor, col: torch.Tensor, val: torch.Tensor, in_features: int,
             width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The CSR regrouped into column panels: (prow int32, pcol uint16 panel-local, pval)."""
    mod = _require()
    prow, pcol, pval = mod.panelize(rowptr, col, val, int(in_features), int(width))
    return prow, pcol, pval


def _lists(layers: list[dict]) -> tuple:
    panels = any(L.get("prow") is not None and L["prow"].numel() > 0 for L in layers)
    empty_i = torch.empty(0, dtype=torch.int32)
    return (
        [L["rowptr"] for L in layers],
        [L["col"] for L in layers],
        [L["val"] for L in layers],
        [L["bias"] for L in layers],
        [bool(L["relu"]) for L in layers],
        [int(L["threads"]) for L in layers],
        [int(L.get("tile", 64)) for L in layers],
        [L.get("prow", empty_i) if L.get("prow") is not None else empty_i for L in layers] if panels else [],
        [L.get("pcol", empty_i) if L.get("pcol") is not None else empty_i for L in layers] if panels else [],
        [L.get("pval", empty_i) if L.get("pval") is not None else empty_i for L in layers] if panels else [],
        [int(L.get("pw", 0)) for L in layers] if panels else [],
    )


def chain_forward(x: torch.Tensor, layers: list[dict], batch_major: bool = False) -> torch.Tensor:
    """Run CSR/dense layers natively; returns feature-major (out_last, B).

    ``x`` is feature-major (in, B), or batch-major (B, in) when ``batch_major``.
    Each layer dict has ``rowptr`` (int32, empty for dense), ``col`` (int16/int32),
    ``val`` (CSR values, or the dense (out, in) weight), ``bias`` (maybe empty),
    ``relu`` (bool), ``threads`` (int), ``tile`` (128, 64, 32 or 16 samples) and
    optionally the column panels ``prow``, ``pcol``, ``pval``, ``pw`` (see ``panelize``).
    """
    mod = _require()
    r, c, v, b, relu, th, ti, pr, pc, pv, pw = _lists(layers)
    return mod.chain_forward(x, r, c, v, b, relu, th, ti, bool(batch_major), pr, pc, pv, pw)


def csr_onto(base: torch.Tensor, csr, x: torch.Tensor, relu: bool = False, threads: int = 1) -> torch.Tensor:
    """``relu?(base + W @ x)`` for a ``formats.CSR`` W (out, in), feature-major ``x`` (in, B) and ``base`` (out, B).

    One native pass (every output row starts from its row of ``base``); returns a new (out, B) tensor.
    """
    mod = _require()
    return mod.csr_onto(base, csr.rowptr, csr.col, csr.val, x, bool(relu), int(threads))


def cut_weight(positions: torch.Tensor, k: int, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positions >= k, weight * that)`` in one native pass: int32 positions, float32 weight (``ranked._cut``)."""
    mod = _require()
    keep, pruned = mod.cut_weight(positions, int(k), weight)
    return keep, pruned


def make_chain(layers: list[dict], in_features: int, module: ModuleType | None = None):
    """The same chain validated once (a C++ ``Chain``); ``.forward(x, batch_major)`` per call.

    ``module``: another build of this source to run it on (``benchmarks/kernel_ab.py``).
    """
    mod = _require() if module is None else module
    return mod.Chain(int(in_features), *_lists(layers))
