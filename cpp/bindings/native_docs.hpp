#pragma once
// Docstrings of anunzi_fast._native (numpydoc). Kept apart so the binding code stays short.

namespace anunzi::docs {

inline constexpr const char* kFloatToPcm16 = R"doc(
Convert float samples to PCM16 exactly as the reference browser client does.

Each sample is clamped to [-1, 1]; negative values are multiplied by 32768, the others by
32767, in double precision; the product is truncated toward zero; NaN becomes 0. The result is
bit-identical to the browser's ``float32ToInt16`` for every float32 input.

Parameters
----------
samples : buffer of float32 or float64
    A numpy array (any shape, C-contiguous, or a 1-D strided view, which is read in place),
    a memoryview, or raw bytes/bytearray (read as native float32). It is read without copying
    and need not be aligned. numpy arrays of other dtypes (int8 and uint8 included) are
    rejected, never converted.
out : writable C-contiguous int16 buffer, optional
    Where to write the result; must have as many elements as ``samples`` and must not overlap
    it. Without it a new array of ``samples``' shape is returned.
return_clipped : bool, keyword-only
    Also return how many samples lay outside [-1, 1] (+-Inf count; NaN does not).

Returns
-------
numpy.ndarray or object, or (result, int)
    ``out`` itself when given, else a new int16 array; with ``return_clipped``, a tuple
    ``(result, clipped_count)``.

Raises
------
TypeError
    ``samples`` is not a buffer or not float32/float64 (big-endian arrays included); ``out``
    is not an int16 buffer.
ValueError
    ``out`` is read-only, non-contiguous, of another size, or overlaps ``samples``;
    ``samples`` is non-contiguous with more than one dimension; raw bytes are not a multiple
    of 4 long.

Notes
-----
The GIL is released while converting 16384 samples or more.
)doc";

inline constexpr const char* kPcm16ToFloat = R"doc(
Convert PCM16 samples to float32: ``v / 32768``, exact.

Parameters
----------
samples : buffer of int16, or raw PCM16 bytes
    A numpy int16 array (any shape, C-contiguous, or a 1-D strided view), a memoryview, or
    bytes/bytearray holding native-endian (little-endian on x86/ARM) PCM16, as received from
    the service. Read without copying; raw bytes must have an even length.
out : writable C-contiguous float32 buffer, optional
    Where to write the result; same number of elements, no overlap with ``samples``.

Returns
-------
numpy.ndarray or object
    ``out`` itself when given, else a new float32 array.

Raises
------
TypeError
    Wrong input or output dtype.
ValueError
    Read-only, non-contiguous, wrongly sized or overlapping ``out``; odd-length raw bytes.
)doc";

inline constexpr const char* kSpscRing = R"doc(
A lock-free ring of int16 or float32 samples for one producer thread and one consumer thread.

Parameters
----------
capacity : int
    Capacity in samples, 1 to 2**31. All memory is allocated here; nothing after.
dtype : str or numpy dtype, default "int16"
    ``"int16"`` or ``"float32"``.

Notes
-----
Exactly one thread may call the producer methods (``write``, ``writable``, ``wait_writable``)
and exactly one the consumer methods (``read_into``, ``read``, ``readable``,
``wait_readable``). A copy or a wait called while another thread is inside one on the same
side raises ``RuntimeError`` and leaves the ring as it was. Copies of 16384 samples or more run
with the GIL released; shorter ones are quicker than a GIL hand-off. Inputs must have the
ring's dtype exactly (``TypeError`` otherwise) and be C-contiguous (``ValueError``).
)doc";

inline constexpr const char* kRingWrite = R"doc(write($self, samples, /)
--

Producer side only. Copy in as many of ``samples`` as fit.

Returns the number of samples taken (0 when the ring is full); the rest is not written.
)doc";

inline constexpr const char* kRingReadInto = R"doc(read_into($self, out, /)
--

Consumer side only. Copy up to ``len(out)`` of the oldest samples into ``out``.

Returns how many samples were written to the front of ``out``; the rest of ``out`` is left
unchanged.
)doc";

inline constexpr const char* kRingRead = R"doc(
Consumer side only. Remove and return up to ``max_samples`` samples as a new array (a copy).
)doc";

inline constexpr const char* kRingWaitReadable = R"doc(
Consumer side only. Wait until at least ``num_samples`` samples can be read.

Returns True when they can, False when ``timeout`` seconds passed first (it returns within
about a millisecond of the timeout). The GIL is released while waiting, and waiting takes no
lock: it spins briefly, then sleeps in short steps. Use it instead of polling: the producer
thread then gets the GIL without a forced switch. When the producer also waits through the
ring, the return is timed to when it is in its own wait, so the GIL changes hands cheaply.
)doc";

inline constexpr const char* kRingWaitWritable = R"doc(
Producer side only. Wait until at least ``num_samples`` samples of space are free.

Returns True when they are, False when ``timeout`` seconds passed first. Waits as
``wait_readable`` does.
)doc";

inline constexpr const char* kJitterBuffer = R"doc(
A bounded playback queue between the network (producer) and the audio device (consumer).

Playback starts after ``prefill_ms`` of audio is buffered, or once a partial prefill has
waited ``prefill_ms`` of pulls (so the last words of a turn always play), and prefills again
after running dry. Running dry outputs silence, counts an underrun and never blocks; note that
the end of every agent turn runs the buffer dry too, so ``stats.underruns`` counts turn ends
as well as late audio. Pushing beyond ``max_ms`` drops the oldest audio. ``clear()``
(barge-in) drops everything. Nothing is lost silently: whenever neither side is inside a call,
``stats.samples_in == stats.samples_out + stats.dropped + stats.buffered``.

Parameters
----------
sample_rate : int
    Samples per second, used to turn the millisecond settings into samples.
prefill_ms : float, keyword-only, default 60
    Audio to collect before playback starts (0 plays at once).
max_ms : float, keyword-only, default 3000
    Most audio kept; must be at least ``prefill_ms``.
dtype : str or numpy dtype, keyword-only, default "int16"
    ``"int16"`` or ``"float32"``; the samples pushed and read have exactly this dtype.

Notes
-----
One producer thread calls ``push`` and ``clear``; one consumer thread (an audio callback)
calls ``read_into`` and ``read``; ``stats`` may be read from anywhere (each counter is exact;
read while the sides work, they come from slightly different moments). A producer (consumer)
method called while another thread is inside one raises ``RuntimeError`` and changes nothing.
)doc";

inline constexpr const char* kJitterPush = R"doc(
Producer side only. Append ``samples`` (copied; the caller may reuse its buffer at once).

Returns how many of the oldest samples were dropped to stay within ``max_ms`` (including
the head of a chunk longer than ``max_ms`` by itself). Runs with the GIL released.
)doc";

inline constexpr const char* kJitterClear = R"doc(
Producer side only. Drop everything buffered (barge-in) and prefill again before playing.

Safe while the consumer is reading. Returns the number of samples dropped.
)doc";

inline constexpr const char* kJitterReadInto = R"doc(
Consumer side only. Fill all of ``out``: buffered samples first, then silence (zeros).

Returns how many samples were real. Never blocks.
)doc";

inline constexpr const char* kJitterRead = R"doc(
Consumer side only. Return ``num_samples`` samples (real ones, then silence) as a new array.
)doc";

}  // namespace anunzi::docs
