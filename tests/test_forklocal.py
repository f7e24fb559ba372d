"""ForkLocal: per-process state is made once per process, and a forked child makes its own."""

import multiprocessing
import os
import threading

from mnist_web.forklocal import ForkLocal, thread_local


def test_one_value_per_process_and_a_fresh_one_after_fork():
    made = []
    local = ForkLocal(lambda: made.append(os.getpid()) or object())
    first = local.get()
    threads = [threading.Thread(target=local.get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert local.get() is first and made == [os.getpid()]  # made once, whatever the threads

    queue = multiprocessing.get_context("fork").SimpleQueue()

    def child():
        queue.put((local.peek() is None, local.get() is not first, os.getpid() in made))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert queue.get() == (True, True, True)  # nothing inherited; its own value, made in the child
    assert local.get() is first  # the parent's stays


def test_pop_forgets_and_thread_local_is_per_thread():
    local = ForkLocal(object)
    value = local.get()
    assert local.pop() is value and local.peek() is None and local.get() is not value
    per_thread = thread_local()
    per_thread.get().name = "main"
    seen = []
    thread = threading.Thread(target=lambda: seen.append(getattr(per_thread.get(), "name", None)))
    thread.start()
    thread.join()
    assert seen == [None] and per_thread.get().name == "main"
