"""Starts N local processes of one script, connected by the backend's engine on loopback.

`launch(backend, num_processes, args)` picks free 127.0.0.1 ports, starts
``python worker.py *args`` N times with the environment each engine reads
(`specformer_keras.distributed.initialize()` reads it):

* tensorflow: ``TF_CONFIG`` (one ``worker`` task per process);
* jax: ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``
  (one CPU device per process);
* torch: ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK`` (gloo on the loopback interface).

Each process runs in its own session under a hard deadline; if one fails or the
deadline passes, all are killed. Returns each process's last stdout line parsed
as JSON, in process order. With ``num_processes=1`` no engine variable is set
(the single-process reference run).

Also runnable by hand:
``KERAS_BACKEND=jax python tests/distributed/launch.py 2 allgather``.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))

# The `engine` a `ProcessLayout` names when `launch` starts several processes.
ENGINES = {
    "tensorflow": "tf.distribute.MultiWorkerMirroredStrategy",
    "jax": "jax.distributed",
    "torch": "torch.distributed",
}
WORKER = os.path.join(HERE, "worker.py")


class LaunchError(RuntimeError):
    """A process failed or the deadline passed; the message has their stderr."""


def free_ports(count):
    """``count`` distinct free TCP ports on 127.0.0.1 (bound, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def engine_env(backend, num_processes, index, ports):
    """The environment variables of process ``index`` for ``backend``'s engine."""
    if num_processes == 1:
        return {}
    if backend == "tensorflow":
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        task = {"type": "worker", "index": index}
        return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}
    if backend == "jax":
        return {
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{ports[0]}",
            "JAX_NUM_PROCESSES": str(num_processes),
            "JAX_PROCESS_ID": str(index),
        }
    if backend == "torch":
        return {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(ports[0]),
            "RANK": str(index),
            "LOCAL_RANK": str(index),
            "WORLD_SIZE": str(num_processes),
            "GLOO_SOCKET_IFNAME": "lo",
        }
    raise ValueError(
        f"Argument `backend` must be tensorflow, jax or torch. Received: {backend!r}"
    )


def _kill(processes):
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for process in processes:
        process.wait()


def launch(backend, num_processes, args, timeout=120, extra_env=None, script=WORKER):
    """Runs ``script *args`` as ``num_processes`` connected processes.

    Args:
        backend: the Keras backend of every process.
        num_processes: how many processes (1: no engine, the reference run).
        args: command-line arguments of ``worker.py`` (strings).
        timeout: seconds for all of them together; then all are killed.
        extra_env: more environment variables for every process.
        script: the Python file each process runs (default ``worker.py``).

    Returns:
        The last stdout line of each process parsed as JSON, in process order.

    Raises:
        LaunchError: a process exited non-zero, printed no JSON, or the
            deadline passed (all processes are killed first).
    """
    ports = free_ports(num_processes)
    base = dict(os.environ)
    for name in ("TF_CONFIG", "JAX_COORDINATOR_ADDRESS", "WORLD_SIZE", "RANK"):
        base.pop(name, None)
    base.update(
        KERAS_BACKEND=backend,
        PYTHONPATH=REPO_ROOT + os.pathsep + base.get("PYTHONPATH", ""),
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
        JAX_PLATFORMS="cpu",
        OMP_NUM_THREADS="1",
    )
    base.update(extra_env or {})
    keep = os.environ.get("LAUNCH_LOG_DIR")  # debugging: keep every process's logs
    with tempfile.TemporaryDirectory() as scratch:
        folder = os.path.join(keep, f"x{num_processes}") if keep else scratch
        os.makedirs(folder, exist_ok=True)
        processes, outputs = [], []
        try:
            for index in range(num_processes):
                env = dict(base, **engine_env(backend, num_processes, index, ports))
                out = open(os.path.join(folder, f"{index}.out"), "w+")
                err = open(os.path.join(folder, f"{index}.err"), "w+")
                outputs.append((out, err))
                processes.append(
                    subprocess.Popen(
                        [sys.executable, script, *args],
                        env=env,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,
                    )
                )
            deadline = time.monotonic() + timeout
            failed = None
            while any(p.poll() is None for p in processes):
                failed = next((p for p in processes if p.poll()), None)
                if failed is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            failed = failed or next((p for p in processes if p.poll()), None)
            timed_out = any(p.poll() is None for p in processes)
            _kill(processes)
            if failed is not None or timed_out:
                why = (
                    f"timed out after {timeout} s"
                    if failed is None
                    else f"process {processes.index(failed)} exited {failed.returncode}"
                )
                raise LaunchError(
                    f"{backend} x{num_processes} {args}: {why}\n"
                    + "\n".join(
                        f"--- process {i} stderr ---\n{_tail(err)}"
                        for i, (_, err) in enumerate(outputs)
                    )
                )
            results = []
            for index, (out, err) in enumerate(outputs):
                out.seek(0)
                lines = out.read().strip().splitlines()
                try:
                    results.append(json.loads(lines[-1]))
                except (IndexError, ValueError):
                    raise LaunchError(
                        f"process {index} printed no JSON line:\n{_tail(err)}"
                    ) from None
            return results
        finally:
            _kill(processes)
            for out, err in outputs:
                out.close()
                err.close()


def launch_with_reference(
    backend, num_processes, args, timeout=120, reference_args=None, **kwargs
):
    """``(reference, results)``: one process and ``num_processes`` ones, run at once.

    The single-process reference run (no engine, no port) starts beside the
    connected processes rather than before them: with one thread a process
    (``OMP_NUM_THREADS=1``) the 2-core machine is otherwise half idle while the
    reference runs. Same arguments as `launch` (``reference_args``: the
    reference's own, default ``args``); ``reference`` is its one result.
    """
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        reference = pool.submit(
            launch, backend, 1, reference_args or args, timeout, **kwargs
        )
        results = pool.submit(launch, backend, num_processes, args, timeout, **kwargs)
        return reference.result()[0], results.result()


def _tail(handle, chars=3000):
    handle.seek(0)
    return handle.read()[-chars:]


if __name__ == "__main__":
    count, *worker_args = sys.argv[1:]
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    started = time.monotonic()
    for line in launch(backend, int(count), worker_args):
        print(json.dumps(line))
    print(f"{time.monotonic() - started:.1f} s", file=sys.stderr)
