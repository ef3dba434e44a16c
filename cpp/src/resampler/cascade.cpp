#include "cascade.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

namespace anunzi::detail {

// The helpers below are declared inline, as member functions defined in the class body are:
// GCC then inlines them into process(), a few per cent of a 10 ms streaming call.

template <typename S>
Cascade<S>::Cascade(StreamState& st,
                    std::vector<std::shared_ptr<const FilterDesign<S>>> designs)
    : scratch_(st.channels * kScratchFrames), dst_(st.channels) {
  stages_.reserve(designs.size());
  for (std::size_t s = 0; s < designs.size(); ++s) {
    stages_.emplace_back(st.stages[s], st.channels, st.isa, std::move(designs[s]));
  }
  clear(st);
}

template <typename S>
Cascade<S>::Cascade(StreamState& st, const Cascade& other)
    : scratch_(st.channels * kScratchFrames), dst_(st.channels) {
  stages_.reserve(other.stages_.size());
  for (std::size_t s = 0; s < other.stages_.size(); ++s) {
    stages_.emplace_back(st.stages[s], other.stages_[s]);
  }
  clear(st);
}

template <typename S>
void Cascade<S>::clear(StreamState& st) {
  for (std::size_t s = 0; s < stages_.size(); ++s) stages_[s].clear(st.stages[s]);
  st.restart();
}

template <typename S>
std::uint64_t Cascade<S>::start_at_output(StreamState& st, std::uint64_t first) {
  clear(st);
  // The last stage starts at `first`; each stage before it starts at the first of its outputs
  // its successor reads.
  for (std::size_t s = stages_.size(); s-- > 0;) {
    first = stages_[s].start_at_output(st.stages[s], first);
  }
  return first;
}

template <typename S>
std::size_t Cascade<S>::process(StreamState& st, const StridedConstView& in, bool last,
                                const StridedView& out) {
  std::size_t written = 0;
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min(kBlockFrames, in.frames - pos);
    append(st, in, pos, n);
    pos += n;
    written += run_stages(st, out, written, last && pos == in.frames);
  } while (pos < in.frames);
  if (last) st.finished = true;
  return written;
}

// Each stage computes what its input allows (on the final block: what the final output needs)
// straight into the next stage's history; the last one into scratch_, then the caller's array.
template <typename S>
std::size_t Cascade<S>::run_stages(StreamState& st, const StridedView& out, std::size_t out_pos,
                                   bool final_block) {
  if (final_block) {
    flush_ = st.flush_targets(st.total_in());
    stages_.front().pad_for(st.stages.front(), flush_.front());
  }
  std::size_t produced = 0;
  const std::size_t last = stages_.size() - 1;
  for (std::size_t s = 0; s <= last; ++s) {
    StageState& ss = st.stages[s];
    const std::uint64_t target = final_block ? flush_[s] : ss.ready_count(ss.total_in);
    if (target > ss.emitted) {
      const auto count = static_cast<std::size_t>(target - ss.emitted);
      if (s < last) {
        Stage<S>& next = stages_[s + 1];
        next.grow(st.stages[s + 1], count);
        if (!next.planar()) {
          for (std::size_t c = 0; c < st.channels; ++c) dst_[c] = next.tail(c, count);
          stages_[s].produce(ss, count, dst_.data());
        } else {  // through staging_ into the next stage's rows
          staging_.resize(st.channels * count);
          for (std::size_t c = 0; c < st.channels; ++c) dst_[c] = staging_.data() + c * count;
          stages_[s].produce(ss, count, dst_.data());
          for (std::size_t c = 0; c < st.channels; ++c) next.put(c, dst_[c], count);
        }
      } else {
        if (writes_directly(out)) {  // straight into the caller's array
          dst_[0] = static_cast<S*>(out.data) + (out_pos + produced);
          stages_[s].produce(ss, count, dst_.data());
          produced += count;
        } else {
          for (std::size_t done = 0; done < count;) {
            const std::size_t batch = std::min(kScratchFrames, count - done);
            for (std::size_t c = 0; c < st.channels; ++c) {
              dst_[c] = scratch_.data() + c * kScratchFrames;
            }
            stages_[s].produce(ss, batch, dst_.data());
            store_batch(st, out, out_pos + produced, batch);
            produced += batch;
            done += batch;
          }
        }
      }
    }
    stages_[s].discard_consumed(ss);
  }
  return produced;
}

template <typename S>
inline void Cascade<S>::append(StreamState& st, const StridedConstView& in, std::size_t start,
                               std::size_t n) {
  if (n == 0) return;
  Stage<S>& first = stages_.front();
  first.grow(st.stages.front(), n);
  constexpr SampleType kOwn = std::is_same<S, float>::value ? SampleType::kFloat32
                                                            : SampleType::kFloat64;
  if (first.planar()) staging_.resize(n);
  for (std::size_t c = 0; c < st.channels; ++c) {
    const std::ptrdiff_t offset = static_cast<std::ptrdiff_t>(c) * in.channel_stride +
                                  static_cast<std::ptrdiff_t>(start) * in.frame_stride;
    if (first.planar() && in.type == kOwn && in.frame_stride == 1) {
      first.put(c, static_cast<const S*>(in.data) + offset, n);  // split straight into rows
      continue;
    }
    S* dst = first.planar() ? staging_.data() : first.tail(c, n);
    // One type switch per block; the per-sample loops below are plain conversions.
    switch (in.type) {
      case SampleType::kFloat32:
        convert(static_cast<const float*>(in.data) + offset, in.frame_stride, n, S(1), dst);
        break;
      case SampleType::kFloat64:
        convert(static_cast<const double*>(in.data) + offset, in.frame_stride, n, S(1), dst);
        break;
      case SampleType::kInt16:
        convert(static_cast<const std::int16_t*>(in.data) + offset, in.frame_stride, n,
                S(1) / S(32768), dst);
        break;
      case SampleType::kInt32:
        convert(static_cast<const std::int32_t*>(in.data) + offset, in.frame_stride, n,
                S(1) / S(2147483648.0), dst);
        break;
    }
    if (first.planar()) first.put(c, dst, n);
  }
}

// One channel of the arithmetic type, frame after frame: the last stage writes there itself.
template <typename S>
inline bool Cascade<S>::writes_directly(const StridedView& out) {
  constexpr SampleType kOwn = std::is_same<S, float>::value ? SampleType::kFloat32
                                                            : SampleType::kFloat64;
  return out.type == kOwn && out.frame_stride == 1 && dst_.size() == 1;
}

// Scaling by a power of two is exact, so this equals dividing by 32768 or 2^31.
template <typename S>
template <typename T>
inline void Cascade<S>::convert(const T* src, std::ptrdiff_t stride, std::size_t n, S scale,
                                S* dst) {
  if (std::is_same<T, S>::value && stride == 1) {  // a plain copy: scale is 1
    std::memcpy(dst, src, n * sizeof(S));
  } else if (stride == 1) {
    for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<S>(src[i]) * scale;
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      dst[i] = static_cast<S>(src[static_cast<std::ptrdiff_t>(i) * stride]) * scale;
    }
  }
}

// Converts `n` outputs per channel from scratch_ into the caller's array; one type switch
// per batch keeps the per-sample loop tight.
template <typename S>
inline void Cascade<S>::store_batch(StreamState& st, const StridedView& out, std::size_t frame,
                                    std::size_t n) {
  for (std::size_t c = 0; c < st.channels; ++c) {
    const S* src = scratch_.data() + c * kScratchFrames;
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
inline double Cascade<S>::round_clip(double v, double lo, double hi, std::uint64_t& clips) {
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

template class Cascade<float>;
template class Cascade<double>;

}  // namespace anunzi::detail
