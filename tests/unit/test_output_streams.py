"""What the front ends write never fails the runs: a terminal that cannot show a character gets a
stand-in, and a reader that goes away is a request to stop, found by a write or by watching the pipe."""

import io
import os
import sys
import time

from collapse_tui.engine.output_streams import GuardedOutput, guarded_output, keep_writable


def test_a_stream_that_cannot_show_a_character_writes_a_stand_in():
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    keep_writable(stream)
    stream.write("8 run(s) → runs/  0.25 ± 0.01  ✓ done  k / λ  é\n")
    stream.flush()
    assert raw.getvalue().decode("ascii") == "8 run(s) -> runs/  0.25 +- 0.01  ok done  k / L  ?\n"


def test_utf8_and_a_chosen_error_handler_are_left_alone():
    utf8 = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    chosen = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="backslashreplace")
    keep_writable(utf8, chosen, None)
    assert utf8.errors == "strict" and chosen.errors == "backslashreplace"


class BrokenPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_broken_pipe_is_a_request_to_stop_said_once_and_later_writes_are_dropped():
    calls = []
    output = GuardedOutput(BrokenPipe(), lambda: calls.append(1))
    assert output.write("a line\n") == len("a line\n")  # as if written: no exception reaches the writer
    output.write("another\n")
    output.flush()
    assert calls == [1] and output.reader_gone.is_set()


def test_a_pipe_whose_reader_closes_is_noticed_without_a_write(monkeypatch):
    read_end, write_end = os.pipe()
    stream = open(write_end, "w")
    monkeypatch.setattr(sys, "stdout", stream)
    calls = []
    try:
        with guarded_output(lambda: calls.append(1), interval=0.05) as gone:
            assert sys.stdout is not stream
            os.close(read_end)
            deadline = time.monotonic() + 5
            while not gone.is_set() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert gone.is_set() and calls == [1]
            print("after the reader left")  # dropped, no BrokenPipeError
        assert sys.stdout is stream
        stream.write("buffered\n")
        stream.flush()  # the descriptor now leads to os.devnull: nothing raises at exit either
    finally:
        stream.close()
