#include "engine.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace anunzi::detail {

// The helpers below are declared inline, as member functions defined in the class body are:
// GCC then inlines them into process(), a few per cent of a 10 ms streaming call.

template <typename S>
PolyphaseEngine<S>::PolyphaseEngine(StreamState& st,
                                    std::shared_ptr<const FilterDesign<S>> design)
    : kernels_(kernels_for<S>(st.isa)),
      filter_(std::move(design)),
      table_(filter_->table.data()),
      history_(st.channels) {
  // Phase-major groups need kMaxGroup periods of outputs in scratch; allow it while the
  // scratch stays modest (it is per channel).
  const std::uint64_t span = kMaxGroup * st.up;
  consecutive_ = kernels_.consecutive != nullptr && !st.interpolated && st.down == 1 &&
                 st.up > 1 && st.up <= kMaxConsecutiveUp;
  phase_major_ = !consecutive_ && !st.interpolated && st.up > 1 &&
                 span * st.channels <= kMaxPhaseMajorScratch;
  scratch_cap_ = std::max<std::size_t>(kScratchMin, phase_major_ ? span + kMaxGroup : 0);
  if (consecutive_) {
    // Several passes of four vectors of outputs per phase, so splitting the history for
    // the fast FIR (about one filter length per batch) is a small part of the work.
    scratch_cap_ = std::max<std::size_t>(1024, 16 * kW * st.up);
    phase_tmp_.assign(3 * (scratch_cap_ / st.up + 4), S(0));
  }
  scratch_.assign(st.channels * scratch_cap_, S(0));
  clear(st);
}

template <typename S>
std::size_t PolyphaseEngine<S>::process(StreamState& st, const StridedConstView& in, bool last,
                                        const StridedView& out) {
  std::size_t written = 0;
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min(kBlockFrames, in.frames - pos);
    append(st, in, pos, n);
    pos += n;
    const bool final_block = last && pos == in.frames;
    written += produce(st, out, written, final_block);
    discard_consumed(st);
  } while (pos < in.frames);
  if (last) st.finished = true;
  return written;
}

template <typename S>
void PolyphaseEngine<S>::clear(StreamState& st) {
  // The signal is zero before the first sample. The history starts at an even absolute
  // index (the fast FIR splits it by parity; discard_consumed drops whole vectors).
  const std::size_t reach = st.before + static_cast<std::size_t>(history_before());
  const std::size_t zeros = reach + (reach & 1);
  for (auto& h : history_) h.assign(zeros + kW, S(0));
  length_ = zeros;
  origin_ = -static_cast<std::int64_t>(zeros);
  st.restart();
}

template <typename S>
std::uint64_t PolyphaseEngine<S>::start_at_output(StreamState& st, std::uint64_t first) {
  clear(st);
  if (first == 0) return 0;
  st.next_index = first * st.down / st.up;
  st.next_phase = first * st.down % st.up;
  st.emitted = first;
  origin_ = static_cast<std::int64_t>(st.next_index) - static_cast<std::int64_t>(st.before) -
            history_before();
  origin_ -= origin_ & 1;  // even, as clear() keeps it
  const std::uint64_t from = origin_ > 0 ? static_cast<std::uint64_t>(origin_) : 0;
  length_ = static_cast<std::size_t>(static_cast<std::int64_t>(from) - origin_);  // zeros
  for (auto& h : history_) h.assign(length_ + kW, S(0));
  st.total_in = from;
  return from;
}

template <typename S>
inline void PolyphaseEngine<S>::append(StreamState& st, const StridedConstView& in,
                                       std::size_t start, std::size_t n) {
  if (n == 0) return;
  for (std::size_t c = 0; c < st.channels; ++c) {
    auto& h = history_[c];
    h.resize(length_ + n + kW);  // new samples are zero (value-initialised)
    S* dst = h.data() + length_;
    const std::ptrdiff_t first = static_cast<std::ptrdiff_t>(c) * in.channel_stride +
                                 static_cast<std::ptrdiff_t>(start) * in.frame_stride;
    // One type switch per block; the per-sample loops below are plain conversions.
    switch (in.type) {
      case SampleType::kFloat32:
        convert(static_cast<const float*>(in.data) + first, in.frame_stride, n, S(1), dst);
        break;
      case SampleType::kFloat64:
        convert(static_cast<const double*>(in.data) + first, in.frame_stride, n, S(1), dst);
        break;
      case SampleType::kInt16:
        convert(static_cast<const std::int16_t*>(in.data) + first, in.frame_stride, n,
                S(1) / S(32768), dst);
        break;
      case SampleType::kInt32:
        convert(static_cast<const std::int32_t*>(in.data) + first, in.frame_stride, n,
                S(1) / S(2147483648.0), dst);
        break;
    }
    std::fill(h.begin() + static_cast<std::ptrdiff_t>(length_ + n), h.end(), S(0));
  }
  length_ += n;
  st.total_in += n;
}

// Scaling by a power of two is exact, so this equals dividing by 32768 or 2^31.
template <typename S>
template <typename T>
inline void PolyphaseEngine<S>::convert(const T* src, std::ptrdiff_t stride, std::size_t n,
                                        S scale, S* dst) {
  if (stride == 1) {
    for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<S>(src[i]) * scale;
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      dst[i] = static_cast<S>(src[static_cast<std::ptrdiff_t>(i) * stride]) * scale;
    }
  }
}

template <typename S>
std::size_t PolyphaseEngine<S>::produce(StreamState& st, const StridedView& out,
                                        std::size_t out_pos, bool final_block) {
  std::uint64_t target = st.ready_count(st.total_in);
  if (final_block) {
    target = std::max<std::uint64_t>(target, st.oneshot_length(st.total_in));
    // The signal is zero after its end: pad enough zeros for every remaining output.
    length_ += st.after + 1;
    for (auto& h : history_) h.resize(length_ + kW, S(0));
  }
  std::size_t produced = 0;
  if (consecutive_) return produce_consecutive(st, out, out_pos, target);
  const std::uint64_t step_int = st.down / st.up, step_frac = st.down % st.up;
  // Outputs whose windows start in the same vector-aligned block of history are computed
  // together so they share sample loads; grouping never changes an output's bits.
  const S* rows[kMaxGroup * 4];
  std::size_t starts[kMaxGroup];
  double weights[kMaxGroup][4];
  S sums[4];
  const S* xs[kMaxGroup * 4];
  std::size_t batch = 0;  // outputs computed into scratch_, not yet stored
  S group_sums[kMaxGroup];
  while (st.emitted < target) {
    // Take up to kMaxGroup whole periods of up outputs (at least kMinPeriods) and compute
    // them phase by phase, so each group shares one coefficient row (outputs one period
    // apart are down samples apart) and no window has to be cut out with a permutation.
    // Bits are the same as with any grouping.
    const std::uint64_t periods =
        std::min<std::uint64_t>(kMaxGroup, (target - st.emitted) / st.up);
    const std::uint64_t span = periods * st.up;
    if (phase_major_ && periods >= kMinPeriods) {
      if (batch + span > scratch_cap_) {
        store_batch(st, out, out_pos + produced, batch);
        produced += batch;
        batch = 0;
      }
      for (std::uint64_t p = 0; p < st.up; ++p) {
        const std::size_t start = static_cast<std::size_t>(
            static_cast<std::int64_t>(st.next_index) - static_cast<std::int64_t>(st.before) -
            origin_);
        for (std::size_t j = 0; j < periods; ++j) rows[j] = table_ + st.next_phase * st.taps;
        for (std::size_t c = 0; c < st.channels; ++c) {
          const S* h = history_[c].data();
          for (std::size_t j = 0; j < periods; ++j) xs[j] = h + start + j * st.down;
          kernels_.group(rows, xs, nullptr, st.taps, periods, group_sums);
          S* dst = scratch_.data() + c * scratch_cap_ + batch + p;
          for (std::size_t j = 0; j < periods; ++j) dst[j * st.up] = group_sums[j];
        }
        st.next_index += step_int;
        st.next_phase += step_frac;
        if (st.next_phase >= st.up) {
          st.next_phase -= st.up;
          ++st.next_index;
        }
      }
      st.next_index += (periods - 1) * st.down;  // whole periods: the phase is unchanged
      batch += span;
      st.emitted += span;
      if (batch + kMaxGroup > scratch_cap_ || st.emitted == target) {
        store_batch(st, out, out_pos + produced, batch);
        produced += batch;
        batch = 0;
      }
      continue;
    }
    std::size_t g = 0;
    bool one_block = true;
    while (g < kMaxGroup && st.emitted + g < target) {
      const std::size_t start =
          static_cast<std::size_t>(static_cast<std::int64_t>(st.next_index) -
                                   static_cast<std::int64_t>(st.before) - origin_);
      if (g > 0) {
        one_block = one_block && (start & ~(kW - 1)) == (starts[0] & ~(kW - 1));
        if (!one_block && st.up != 1) break;
      }
      starts[g] = start;
      if (!st.interpolated) {
        rows[g] = table_ + st.next_phase * st.taps;
      } else {
        // Position between interpolation rows, from the exact integer phase so it does not
        // depend on how the stream was chunked.
        const std::uint64_t scaled = st.next_phase * kInterpPhases;
        const std::uint64_t p = scaled / st.up;
        const double mu = static_cast<double>(scaled % st.up) / static_cast<double>(st.up);
        weights[g][0] = -mu * (mu - 1.0) * (mu - 2.0) / 6.0;
        weights[g][1] = (mu + 1.0) * (mu - 1.0) * (mu - 2.0) / 2.0;
        weights[g][2] = -(mu + 1.0) * mu * (mu - 2.0) / 2.0;
        weights[g][3] = (mu + 1.0) * mu * (mu - 1.0) / 6.0;
        for (std::size_t r = 0; r < 4; ++r) {  // rows p .. p+3 are u = (p-1 .. p+2) / P
          rows[4 * g + r] = table_ + (p + r) * st.taps;
        }
      }
      ++g;
      st.next_index += step_int;
      st.next_phase += step_frac;
      if (st.next_phase >= st.up) {
        st.next_phase -= st.up;
        ++st.next_index;
      }
    }
    for (std::size_t c = 0; c < st.channels; ++c) {
      S* h = history_[c].data();
      if (!st.interpolated) {
        for (std::size_t o = 0; o < g; ++o) xs[o] = h + starts[o];
        const S* block = one_block ? h + (starts[0] & ~(kW - 1)) : nullptr;
        kernels_.group(rows, xs, block, st.taps, g, scratch_.data() + c * scratch_cap_ + batch);
      } else {
        for (std::size_t o = 0; o < g; ++o) {
          for (std::size_t r = 0; r < 4; ++r) xs[r] = h + starts[o];
          kernels_.group(rows + 4 * o, xs, nullptr, st.taps, 4, sums);
          const double y = (weights[o][0] * sums[0] + weights[o][1] * sums[1]) +
                           (weights[o][2] * sums[2] + weights[o][3] * sums[3]);
          scratch_[c * scratch_cap_ + batch + o] = static_cast<S>(y);
        }
      }
    }
    batch += g;
    st.emitted += g;
    if (batch + kMaxGroup > scratch_cap_ || st.emitted == target) {
      store_batch(st, out, out_pos + produced, batch);
      produced += batch;
      batch = 0;
    }
  }
  return produced;
}

// Integer up factors (down == 1): the outputs of one phase have consecutive windows, so
// each phase is a plain correlation y[w] = sum_t g[t] x[w + t] over window starts w. The
// two-parallel fast FIR computes a pair of them from three half-length correlations of the
// de-interleaved input, 3/4 of the multiply-adds: with u0[k] = x[2k], u1[k] = x[2k + 1],
// s[k] = u1[k] + u0[k + 1] and A = g_even * u0, B = g_odd * u1, C = (g_even + g_odd) * s,
//   y[2k] = A[k] + B[k],   y[2k + 1] = (C[k] - A[k + 1]) - B[k],
// where the parity is that of the absolute input index, so every output is computed the
// same way however the stream was chunked. Each correlation is the consecutive kernel (one
// multiply-add chain per output, in tap order).
template <typename S>
std::size_t PolyphaseEngine<S>::produce_consecutive(StreamState& st, const StridedView& out,
                                                    std::size_t out_pos, std::uint64_t target) {
  const std::size_t half = filter_->fast_fir_half;
  const std::size_t skip = filter_->leading_zeros;
  const auto front = static_cast<std::int64_t>(filter_->fast_fir_front);
  const S* split = filter_->fast_fir.data();
  std::size_t produced = 0;
  while (st.emitted < target) {
    const auto count =
        static_cast<std::size_t>(std::min<std::uint64_t>(target - st.emitted, scratch_cap_));
    // The history this batch reads: from its first window (rounded down to an even index)
    // to past its last one.
    auto window = [&](std::uint64_t index) {
      return static_cast<std::size_t>(static_cast<std::int64_t>(index) -
                                      static_cast<std::int64_t>(st.before) - origin_ +
                                      static_cast<std::int64_t>(skip) - front);
    };
    const std::size_t lo = window(st.next_index) & ~std::size_t{1};
    const std::size_t hi =
        window(st.next_index + (st.next_phase + count - 1) / st.up) + 2 * half + 4;
    if ((hi - lo) / 2 + kSplitSlack > split_cap_) {  // room for every channel's split
      split_cap_ = (hi - lo) / 2 + kSplitSlack;
      split_history_.assign(3 * st.channels * split_cap_, S(0));
    }
    for (std::size_t c = 0; c < st.channels; ++c) deinterleave(c, lo, hi);
    for (std::size_t p = 0; p < st.up && p < count; ++p) {
      const std::uint64_t phase = (st.next_phase + p) % st.up;
      const std::uint64_t index = st.next_index + (st.next_phase + p) / st.up;
      // History index of the first tap (after the skipped zeros, before the front ones) of
      // this phase's first output.
      const std::size_t first = window(index);
      const std::size_t n = (count - p + st.up - 1) / st.up;
      // The history starts at an even absolute index (clear()), so parity is the index's.
      const std::size_t k_lo = (first - lo) / 2;
      const std::size_t k_hi = (first + n - 1 - lo) / 2;
      const std::size_t pairs = k_hi - k_lo + 1;
      const S* g = split + 3 * phase * half;
      for (std::size_t c = 0; c < st.channels; ++c) {
        const S* u0 = split_history_.data() + 3 * c * split_cap_;
        const S* u1 = u0 + split_cap_;
        const S* s = u1 + split_cap_;
        S* a = phase_tmp_.data();
        S* b = a + pairs + 1;
        S* cc = b + pairs;
        kernels_.consecutive(g, u0 + k_lo, half, pairs + 1, a);
        kernels_.consecutive(g + half, u1 + k_lo, half, pairs, b);
        kernels_.consecutive(g + 2 * half, s + k_lo, half, pairs, cc);
        S* dst = scratch_.data() + c * scratch_cap_ + p;
        for (std::size_t j = 0; j < n; ++j) {
          const std::size_t w = first + j - lo;
          const std::size_t k = w / 2 - k_lo;
          dst[j * st.up] = (w & 1) == 0 ? a[k] + b[k] : (cc[k] - a[k + 1]) - b[k];
        }
      }
    }
    st.next_phase += count;
    st.next_index += st.next_phase / st.up;
    st.next_phase %= st.up;
    st.emitted += count;
    store_batch(st, out, out_pos + produced, count);
    produced += count;
  }
  return produced;
}

// Splits history [lo, hi) of channel c (lo even) into u0, u1 and s (see
// produce_consecutive), with zeros after them for the kernel's reads past the end (and in
// place of history beyond its end).
template <typename S>
inline void PolyphaseEngine<S>::deinterleave(std::size_t c, std::size_t lo, std::size_t hi) {
  const AlignedVector<S>& h = history_[c];
  const std::size_t end = (hi - lo) / 2 + kSplitSlack;
  const std::size_t top = std::min(hi, h.size());  // samples [lo, top) exist
  const std::size_t n0 = std::min(end, (top - lo + 1) / 2), n1 = std::min(end, (top - lo) / 2);
  S* u0 = split_history_.data() + 3 * c * split_cap_;
  S* u1 = u0 + split_cap_;
  S* s = u1 + split_cap_;
  const S* x = h.data() + lo;
  for (std::size_t k = 0; k < n0; ++k) u0[k] = x[2 * k];
  for (std::size_t k = 0; k < n1; ++k) u1[k] = x[2 * k + 1];
  std::fill(u0 + n0, u0 + end, S(0));
  std::fill(u1 + n1, u1 + end, S(0));
  for (std::size_t k = 0; k + 1 < end; ++k) s[k] = u1[k] + u0[k + 1];
  s[end - 1] = S(0);
}

// Converts `n` outputs per channel from scratch_ into the caller's array; one type switch
// per batch keeps the per-sample loop tight.
template <typename S>
inline void PolyphaseEngine<S>::store_batch(StreamState& st, const StridedView& out,
                                            std::size_t frame, std::size_t n) {
  for (std::size_t c = 0; c < st.channels; ++c) {
    const S* src = scratch_.data() + c * scratch_cap_;
    const std::ptrdiff_t base = static_cast<std::ptrdiff_t>(frame) * out.frame_stride +
                                static_cast<std::ptrdiff_t>(c) * out.channel_stride;
    const std::ptrdiff_t fs = out.frame_stride;
    switch (out.type) {
      case SampleType::kFloat32: {
        float* dst = static_cast<float*>(out.data) + base;
        for (std::size_t i = 0; i < n; ++i) {
          dst[static_cast<std::ptrdiff_t>(i) * fs] = static_cast<float>(src[i]);
        }
        break;
      }
      case SampleType::kFloat64: {
        double* dst = static_cast<double*>(out.data) + base;
        for (std::size_t i = 0; i < n; ++i) {
          dst[static_cast<std::ptrdiff_t>(i) * fs] = static_cast<double>(src[i]);
        }
        break;
      }
      case SampleType::kInt16: {
        std::int16_t* dst = static_cast<std::int16_t*>(out.data) + base;
        for (std::size_t i = 0; i < n; ++i) {
          dst[static_cast<std::ptrdiff_t>(i) * fs] = static_cast<std::int16_t>(
              round_clip(static_cast<double>(src[i]) * 32768.0, -32768.0, 32767.0, st.clips));
        }
        break;
      }
      case SampleType::kInt32: {
        std::int32_t* dst = static_cast<std::int32_t*>(out.data) + base;
        for (std::size_t i = 0; i < n; ++i) {
          dst[static_cast<std::ptrdiff_t>(i) * fs] = static_cast<std::int32_t>(round_clip(
              static_cast<double>(src[i]) * 2147483648.0, -2147483648.0, 2147483647.0, st.clips));
        }
        break;
      }
    }
  }
}

// Round to nearest (ties to even) and clip; no dither, so digital silence stays exactly zero.
template <typename S>
inline double PolyphaseEngine<S>::round_clip(double v, double lo, double hi,
                                             std::uint64_t& clips) {
  double r = std::nearbyint(v);
  if (r > hi) {
    ++clips;
    r = hi;
  } else if (r < lo) {
    ++clips;
    r = lo;
  } else if (std::isnan(r)) {
    r = 0.0;
  }
  return r;
}

// Input kept before the next output's window: the fast FIR's front zeros reach before it.
template <typename S>
inline std::int64_t PolyphaseEngine<S>::history_before() const {
  return consecutive_ ? static_cast<std::int64_t>(filter_->fast_fir_front) : 0;
}

template <typename S>
inline void PolyphaseEngine<S>::discard_consumed(const StreamState& st) {
  // Keep history from the first tap of the next output onwards, dropping whole vectors so
  // the history keeps its alignment.
  const std::int64_t keep_from = static_cast<std::int64_t>(st.next_index) -
                                 static_cast<std::int64_t>(st.before) - history_before();
  const std::int64_t drop_raw = std::min<std::int64_t>(keep_from - origin_,
                                                       static_cast<std::int64_t>(length_));
  const std::int64_t drop = drop_raw / static_cast<std::int64_t>(kW) *
                            static_cast<std::int64_t>(kW);
  if (drop <= 0) return;
  for (auto& h : history_) {
    h.erase(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(drop));
  }
  length_ -= static_cast<std::size_t>(drop);
  origin_ += drop;
}

template class PolyphaseEngine<float>;
template class PolyphaseEngine<double>;

}  // namespace anunzi::detail
