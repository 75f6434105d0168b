"""Sessions in several Python threads: one model shared, the same results as in
one thread, the GIL released while the kernels run, a session used by two threads
at once refused (ctest python.threads)."""
import threading

import numpy as np
import torch

import amq
import amq.torch
from amq import _export_torch as export_torch
from conftest import randn, torch_rnn


def quantized_model(tmp_path, hidden=256, seed=1):
    rnn = torch_rnn("lstm", 64, hidden, layers=2, seed=seed)
    path = tmp_path / "m.safetensors"
    export_torch.export_rnn(str(path), rnn)
    return amq.quantize(path, wbits=2, abits=2)


def in_threads(fn, args):
    """fn(*a) for each a in args, each in its own thread started together; the results."""
    results, errors = [None] * len(args), []
    barrier = threading.Barrier(len(args))

    def body(i):
        try:
            barrier.wait()
            results[i] = fn(*args[i])
        except BaseException as e:  # re-raised below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_threads_equal_single_thread(tmp_path):
    """Six threads, each with its own session (batch 1..4) on one shared model:
    three runs carrying the state, then reset() and step by step; each thread's
    results equal those of the same work done in this thread alone."""
    m = quantized_model(tmp_path)
    inputs = [randn(40, b, 64, seed=10 + b) for b in (1, 2, 3, 1, 4, 2)]

    def work(x):
        s = m.session(x.shape[1])
        outs = [s.run(x) for _ in range(3)]
        s.reset()
        steps = np.stack([s.step(x[t]) for t in range(x.shape[0])])
        return outs + [steps]

    expected = [work(x) for x in inputs]
    assert not np.array_equal(expected[0][0], expected[0][1])  # the state carries over
    for got, ref in zip(in_threads(work, [(x,) for x in inputs]), expected):
        for a, b in zip(got, ref):
            assert np.array_equal(a, b)


def test_gil_released_while_kernels_run(tmp_path):
    """Two sessions each run a long sequence in its own thread: the kernel calls
    (timed inside the module, after the GIL is released) overlap in time. With the
    GIL held the second call could only start after the first ended."""
    m = quantized_model(tmp_path, hidden=512)
    x = randn(4000, 1, 64, seed=3)
    sessions = [m.session(1), m.session(1)]

    def work(s):
        s.run(x)
        return s._s._last_call_ns()

    (a0, a1), (b0, b1) = in_threads(work, [(s,) for s in sessions])
    assert a1 > a0 and b1 > b0
    overlap = min(a1, b1) - max(a0, b0)
    assert overlap > 0, f"kernel calls did not overlap: [{a0}, {a1}] and [{b0}, {b1}]"


def test_one_session_two_threads_refused(tmp_path):
    m = quantized_model(tmp_path, hidden=512)
    s = m.session(1)
    long_x, short_x = randn(3000, 1, 64, seed=4), randn(1, 1, 64, seed=5)
    refused = []

    def long_run():  # retried when the main thread's short call holds the session
        while True:
            try:
                return s.run(long_x)
            except amq.Error:
                pass

    t = threading.Thread(target=long_run)
    t.start()
    while t.is_alive() and not refused:
        try:
            s.run(short_x)
        except amq.Error as e:
            refused.append(str(e))
    t.join()
    assert refused and "in use by another thread" in refused[0]


def test_drop_in_module_shared_by_threads():
    ref = torch_rnn("gru", 16, 48, layers=2, seed=6, batch_first=True)
    fast = amq.torch.from_module(ref, wbits=2, abits=2)
    xs = [torch.from_numpy(randn(2, 30, 16, seed=20 + i)) for i in range(4)]
    expected = [fast(x)[0] for x in xs]
    results = in_threads(lambda x: fast(x)[0], [(x,) for x in xs])
    for r, e in zip(results, expected):
        assert torch.equal(r, e)
