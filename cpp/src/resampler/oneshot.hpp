#pragma once
// Internal to the resampler: a one-shot conversion split across threads, bit for bit as one
// pass would compute it.
#include <cstdint>

#include "anunzi/resampler.hpp"
#include "stream.hpp"

namespace anunzi::detail {

// How many threads oneshot() would use for `in_frames` frames and at most `threads`.
[[nodiscard]] unsigned oneshot_parts(const Stream& stream, std::uint64_t in_frames,
                                     unsigned threads);

// Clears `stream` and converts all of `in` as one whole signal, as stream.process(in, true,
// out) would: `stream` takes the first part, and each further part continues the conversion
// from its own output frame on a fresh copy sharing the design, on its own thread. `out` must
// have stream.state().oneshot_frames(in.frames) frames. Afterwards the stream is finished.
void oneshot(Stream& stream, const StridedConstView& in, const StridedView& out,
             unsigned threads);

}  // namespace anunzi::detail
