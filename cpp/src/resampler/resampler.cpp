// Streaming polyphase resampler: filter design, rate ratio, and the per-sample engine.
#include "anunzi/resampler.hpp"

#include <exception>
#include <optional>
#include <thread>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include "prototype.hpp"
#include "kernels.hpp"

namespace anunzi {

namespace {

constexpr double kPi = 3.14159265358979323846;
// Ratios are kept as exact fractions of integers up to this size; beyond it (non-integer or
// huge co-prime rates) the ratio is approximated by a continued fraction, an error far below
// any clock's accuracy.
constexpr std::uint64_t kMaxStep = 1u << 20;
// One exact coefficient row per output phase while the table stays cache-friendly; beyond it,
// rows at 1/kInterpPhases steps and cubic (Lagrange) interpolation between four of them, whose
// error stays near -190 dB, below every preset's target.
constexpr std::uint64_t kMaxExactPhases = 4096;
constexpr std::size_t kMaxExactTableBytes = std::size_t{8} << 20;
constexpr std::uint64_t kInterpPhases = 256;
// Refuse designs beyond this (e.g. 192 kHz -> 1 Hz at VHQ) rather than exhaust memory.
constexpr double kMaxTableBytes = 256.0 * (1 << 20);
// Input is buffered and consumed in blocks of this many frames so the history stays in cache.
constexpr std::size_t kBlockFrames = 4096;

std::uint64_t gcd_u64(std::uint64_t a, std::uint64_t b) {
  while (b != 0) {
    const std::uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Best rational approximation num/den of `ratio` with both terms <= kMaxStep.
std::pair<std::uint64_t, std::uint64_t> approximate_ratio(double ratio) {
  std::uint64_t p0 = 0, q0 = 1, p1 = 1, q1 = 0;
  double x = ratio;
  for (int iter = 0; iter < 64; ++iter) {
    const double a_f = std::floor(x);
    if (a_f > static_cast<double>(kMaxStep)) break;
    const auto a = static_cast<std::uint64_t>(a_f);
    const std::uint64_t p2 = a * p1 + p0, q2 = a * q1 + q0;
    if (p2 > kMaxStep || q2 > kMaxStep) break;
    p0 = p1;
    q0 = q1;
    p1 = p2;
    q1 = q2;
    const double frac = x - a_f;
    if (frac < 1e-12) break;
    x = 1.0 / frac;
  }
  if (q1 == 0 || p1 == 0) throw std::invalid_argument("sample rate ratio is out of range");
  return {p1, q1};
}

std::pair<std::uint64_t, std::uint64_t> rate_ratio(double in_rate, double out_rate) {
  const bool integral = in_rate == std::floor(in_rate) && out_rate == std::floor(out_rate) &&
                        in_rate < 9.0e15 && out_rate < 9.0e15;
  if (integral) {
    const auto in_i = static_cast<std::uint64_t>(in_rate);
    const auto out_i = static_cast<std::uint64_t>(out_rate);
    const std::uint64_t g = gcd_u64(in_i, out_i);
    if (out_i / g <= kMaxStep && in_i / g <= kMaxStep) return {out_i / g, in_i / g};
  }
  return approximate_ratio(out_rate / in_rate);
}

// 64-byte aligned storage, so the vector loads of aligned history blocks and of coefficient
// rows never straddle cache lines.
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  explicit AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{64}); }
  bool operator==(const AlignedAllocator&) const noexcept { return true; }
  bool operator!=(const AlignedAllocator&) const noexcept { return false; }
};


}  // namespace

FilterSpec filter_spec(Quality quality) {
  switch (quality) {
    case Quality::kQuick:
      return {0.80, 1.20, 50.0, false};
    case Quality::kLow:
      return {0.85, 1.15, 80.0, false};
    case Quality::kMedium:
      return {0.90, 1.10, 105.0, false};
    case Quality::kHigh:
      return {0.91, 1.00, 130.0, false};
    case Quality::kVeryHigh:
      return {0.91, 1.00, 175.0, true};
  }
  throw std::invalid_argument("Quality must be one of [QQ, LQ, MQ, HQ, VHQ]");
}

bool quality_is_valid(int quality) {
  return quality == 0 || quality == 1 || quality == 2 || quality == 4 || quality == 6;
}

Isa select_isa() {
  const char* forced = std::getenv("ANUNZI_FAST_ISA");
  if (forced != nullptr && forced[0] != '\0') {
    const std::optional<Isa> isa = isa_from_name(forced);
    if (!isa) {
      throw std::invalid_argument(std::string("ANUNZI_FAST_ISA=") + forced +
                                  " is not one of portable, sse2, avx2, avx512");
    }
    if (!isa_supported(*isa)) {
      throw std::invalid_argument(std::string("ANUNZI_FAST_ISA=") + forced +
                                  " is not supported by this CPU");
    }
    return *isa;
  }
  return best_supported_isa();
}

class ResamplerImplBase {
 public:
  virtual ~ResamplerImplBase() = default;
  virtual std::size_t output_frames_for(std::size_t in_frames, bool last) const = 0;
  virtual std::size_t process(const StridedConstView& in, bool last, const StridedView& out) = 0;
  virtual void clear() = 0;
  virtual double delay() const = 0;
  virtual double latency_frames() const = 0;
  virtual std::uint64_t num_clips() const = 0;
  virtual std::size_t num_channels() const = 0;
  virtual std::size_t taps_per_output() const = 0;
  virtual std::size_t num_phases() const = 0;
  virtual bool interpolated_phases() const = 0;
  virtual const char* design_method() const = 0;
  virtual Isa isa() const = 0;
  virtual bool double_precision() const = 0;
  virtual std::uint64_t out_step() const = 0;
  virtual std::uint64_t in_step() const = 0;
  virtual std::size_t oneshot_length(std::size_t in_frames) const = 0;
  virtual std::unique_ptr<ResamplerImplBase> fresh_copy() const = 0;
  virtual std::uint64_t start_at_output(std::uint64_t first) = 0;
  virtual std::uint64_t outputs_ready_after(std::uint64_t total_in) const = 0;
};

namespace {

// A designed filter: coefficient rows, one per phase. Immutable once built, so streams with
// the same ratio and preset share one.
template <typename S>
struct FilterDesign {
  static constexpr std::size_t kLanes = std::is_same<S, float>::value ? 16 : 8;
  std::vector<S, AlignedAllocator<S>> table;
  std::size_t taps = 0, before = 0, after = 0, rows = 0;
  bool interpolated = false;
  detail::PrototypeKind kind = detail::PrototypeKind::kKaiser;
  // Zero taps at the start of every row (the SIMD padding, and more for rows whose support is
  // shorter): the consecutive kernel, which has no vector-width constraint, skips them.
  std::size_t leading_zeros = 0;
  // The two-parallel fast FIR's filters for integer up factors, one per phase: the row from
  // leading_zeros on, of even length 2 * half, split into even taps, odd taps and their sums:
  // fast_fir[(3 * r + {0, 1, 2}) * half + j] = g[2j], g[2j + 1], g[2j] + g[2j + 1].
  // Every product the fast FIR forms must lie in the window of an output it computes, or
  // chunked and one-shot results could differ in the last bits (terms that cancel only in
  // exact arithmetic would see input a stream has not received yet). So the taps are
  // extended at the front with fast_fir_front zeros to an even length (so no product reaches
  // past a window's end); windows start that many samples earlier.
  std::vector<S, AlignedAllocator<S>> fast_fir;
  std::size_t fast_fir_half = 0, fast_fir_front = 0;
};

template <typename S>
std::shared_ptr<const FilterDesign<S>> design_filter(std::uint64_t up, std::uint64_t down,
                                                     const FilterSpec& spec) {
  constexpr std::size_t kLanes = FilterDesign<S>::kLanes;
  auto d = std::make_shared<FilterDesign<S>>();
  const detail::Prototype h = detail::Prototype::design(up, down, spec);
  d->kind = h.kind();
  const double half_width = h.half_width();
  const auto w_floor = static_cast<std::size_t>(std::floor(half_width));
  // Taps cover input offsets m in [-before, after] around the output's integer position; zero
  // taps padding to the SIMD width go on the past side, so they add no latency. Interpolated
  // rows reach a little further (u in [-1/P, 1 + 2/P]).
  auto layout = [&](bool interpolated) {
    d->interpolated = interpolated;
    d->after = w_floor + (interpolated ? 2 : 1);
    const std::size_t before_min = w_floor + (interpolated ? 1 : 0);
    d->taps = (d->after + before_min + 1 + kLanes - 1) / kLanes * kLanes;
    d->before = d->taps - 1 - d->after;
  };
  // Interpolate between rows when there are too many phases, or when the exact table would be
  // large and interpolation rows are fewer (never for strong decimation: one long row). The
  // size test needs the exact layout's tap count, so that layout is computed first.
  layout(false);
  const bool big = static_cast<double>(up) * static_cast<double>(d->taps) * sizeof(S) >
                   static_cast<double>(kMaxExactTableBytes);
  if (!h.exact_rows_only() && (up > kMaxExactPhases || (big && up > kInterpPhases + 3))) {
    layout(true);
  }
  const std::size_t rows = d->interpolated ? kInterpPhases + 3 : static_cast<std::size_t>(up);
  if (static_cast<double>(rows) * static_cast<double>(d->taps) * sizeof(S) > kMaxTableBytes)
    throw std::invalid_argument("sample rate ratio too extreme for this quality");

  // Row r holds the taps for fractional position u(r); exact rows have u = r / up,
  // interpolation rows u = (r - 1) / kInterpPhases for r in [0, kInterpPhases + 3).
  d->rows = d->interpolated ? kInterpPhases + 3 : static_cast<std::size_t>(up);
  d->table.assign(d->rows * d->taps, S(0));
  // The prototype's nominal passband gain is 1, so rows are taken as they are (times the
  // polyphase gain): no row is scaled to unit DC gain on its own, which would put copies of
  // the passband at multiples of the input rate as strong as the stopband ripple there (and
  // double the passband's deviation). DC lies in the flat part, within the stopband ripple.
  const double gain = h.nominal_gain();
  for (std::size_t r = 0; r < d->rows; ++r) {
    const double u = d->interpolated ? (static_cast<double>(r) - 1.0) / kInterpPhases
                                     : static_cast<double>(r) / static_cast<double>(up);
    for (std::size_t n = 0; n < d->taps; ++n) {
      const double m = static_cast<double>(n) - static_cast<double>(d->before);
      d->table[r * d->taps + n] = static_cast<S>(gain * h(u - m));
    }
  }
  d->leading_zeros = d->taps;
  for (std::size_t r = 0; r < d->rows; ++r) {
    std::size_t n = 0;
    while (n < d->leading_zeros && d->table[r * d->taps + n] == S(0)) ++n;
    d->leading_zeros = n;
  }
  // The fast FIR's filters (integer up factors), one per phase: the row after its leading
  // zeros, with `front` zeros in front to make its length even.
  if (down == 1 && up > 1 && !d->interpolated) {
    const std::size_t length = d->taps - d->leading_zeros;
    const std::size_t front = length % 2, half = (length + front) / 2;
    d->fast_fir_front = front;
    d->fast_fir_half = half;
    d->fast_fir.assign(3 * d->rows * half, S(0));
    for (std::size_t r = 0; r < d->rows; ++r) {
      const S* row = d->table.data() + r * d->taps + d->leading_zeros;
      auto tap = [&](std::size_t i) {
        return i < front ? 0.0 : static_cast<double>(row[i - front]);
      };
      S* even = d->fast_fir.data() + 3 * r * half;
      for (std::size_t j = 0; j < half; ++j) {
        const double e = tap(2 * j), o = tap(2 * j + 1);
        even[j] = static_cast<S>(e);
        even[half + j] = static_cast<S>(o);
        even[2 * half + j] = static_cast<S>(e + o);
      }
    }
  }
  return d;
}

// Designing a filter costs milliseconds (a Bessel function per tap), more than resampling a
// second of audio; one-shot calls repeat the same few designs, so recently used ones are kept,
// up to kDesignCacheBytes in total. A single design can reach kMaxTableBytes: those are never
// kept, so deleting the streams of an extreme ratio gives the memory back.
constexpr std::size_t kDesignCacheBytes = std::size_t{64} << 20;

struct DesignCache {
  struct Entry {
    std::uint64_t up, down;
    double passband, stopband, attenuation;
    bool double_precision;
    std::size_t bytes;
    std::shared_ptr<const void> design;  // a FilterDesign<float> or FilterDesign<double>
  };
  std::mutex mutex;
  std::vector<Entry> entries;  // most recently used last
  std::size_t bytes = 0;
  std::uint64_t designs_computed = 0;
};

DesignCache& design_cache() {
  static DesignCache cache;
  return cache;
}

template <typename S>
std::shared_ptr<const FilterDesign<S>> cached_design(std::uint64_t up, std::uint64_t down,
                                                     const FilterSpec& spec) {
  constexpr bool kDouble = std::is_same<S, double>::value;
  DesignCache& cache = design_cache();
  // Finds the entry for this design and makes it the most recently used; caller holds the lock.
  auto find = [&]() -> std::shared_ptr<const FilterDesign<S>> {
    for (std::size_t i = 0; i < cache.entries.size(); ++i) {
      const DesignCache::Entry& e = cache.entries[i];
      if (e.up == up && e.down == down && e.passband == spec.passband_end &&
          e.stopband == spec.stopband_begin && e.attenuation == spec.attenuation_db &&
          e.double_precision == kDouble) {
        DesignCache::Entry hit = e;
        cache.entries.erase(cache.entries.begin() + static_cast<std::ptrdiff_t>(i));
        cache.entries.push_back(hit);
        return std::static_pointer_cast<const FilterDesign<S>>(hit.design);
      }
    }
    return nullptr;
  };
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (auto hit = find()) return hit;
  }
  auto design = design_filter<S>(up, down, spec);  // outside the lock: may take seconds
  const std::size_t bytes = design->table.size() * sizeof(S);
  std::lock_guard<std::mutex> lock(cache.mutex);
  ++cache.designs_computed;
  if (bytes > kDesignCacheBytes) return design;
  // Another thread may have designed the same filter meanwhile: share its copy, keep one.
  if (auto hit = find()) return hit;
  while (!cache.entries.empty() && cache.bytes + bytes > kDesignCacheBytes) {
    cache.bytes -= cache.entries.front().bytes;
    cache.entries.erase(cache.entries.begin());
  }
  cache.entries.push_back({up, down, spec.passband_end, spec.stopband_begin,
                           spec.attenuation_db, kDouble, bytes, design});
  cache.bytes += bytes;
  return design;
}

// S is the arithmetic type of the history, the coefficients and the accumulation.
template <typename S>
class PolyphaseResampler final : public ResamplerImplBase {
  // Taps are padded to, and history addressed in, blocks of one 512-bit vector.
  static constexpr std::size_t kLanes = std::is_same<S, float>::value ? 16 : 8;

 public:
  PolyphaseResampler(std::uint64_t out_step, std::uint64_t in_step, std::size_t num_channels,
                     const FilterSpec& spec, Isa isa)
      : up_(out_step),
        down_(in_step),
        channels_(num_channels),
        isa_(isa),
        kernels_(detail::kernels_for<S>(isa)),
        history_(num_channels),
        scratch_() {
    adopt(cached_design<S>(up_, down_, spec));
  }

  // A fresh stream sharing this one's filter design (no redesign, even of an uncached one).
  PolyphaseResampler(const PolyphaseResampler& other, std::size_t)
      : up_(other.up_),
        down_(other.down_),
        channels_(other.channels_),
        isa_(other.isa_),
        kernels_(other.kernels_),
        history_(other.channels_),
        scratch_() {
    adopt(other.filter_);
  }

  std::unique_ptr<ResamplerImplBase> fresh_copy() const override {
    return std::make_unique<PolyphaseResampler>(*this, std::size_t{0});
  }

  // Turns a fresh stream into the continuation of a one-shot conversion from output `first`:
  // as if outputs [0, first) had been produced from the input before the returned frame,
  // which is where the caller feeds the input from.
  std::uint64_t start_at_output(std::uint64_t first) override {
    clear();
    if (first == 0) return 0;
    next_index_ = first * down_ / up_;
    next_phase_ = first * down_ % up_;
    emitted_ = first;
    origin_ = static_cast<std::int64_t>(next_index_) - static_cast<std::int64_t>(before_) -
              history_before();
    origin_ -= origin_ & 1;  // even, as clear() keeps it
    const std::uint64_t from = origin_ > 0 ? static_cast<std::uint64_t>(origin_) : 0;
    length_ = static_cast<std::size_t>(static_cast<std::int64_t>(from) - origin_);  // zeros
    for (auto& h : history_) h.assign(length_ + kLanes, S(0));
    total_in_ = from;
    return from;
  }

  std::uint64_t outputs_ready_after(std::uint64_t total_in) const override {
    return ready_count(total_in);
  }

 private:
  void adopt(std::shared_ptr<const FilterDesign<S>> filter) {
    filter_ = std::move(filter);
    table_ = filter_->table.data();
    taps_ = filter_->taps;
    before_ = filter_->before;
    after_ = filter_->after;
    rows_ = filter_->rows;
    interpolated_ = filter_->interpolated;
    // Phase-major groups need kMaxGroup periods of outputs in scratch; allow it while the
    // scratch stays modest (it is per channel).
    const std::uint64_t span = detail::kMaxGroup * up_;
    consecutive_ = kernels_.consecutive != nullptr && !interpolated_ && down_ == 1 && up_ > 1 &&
                   up_ <= kMaxConsecutiveUp;
    phase_major_ = !consecutive_ && !interpolated_ && up_ > 1 &&
                   span * channels_ <= kMaxPhaseMajorScratch;
    scratch_cap_ = std::max<std::size_t>(kScratchMin,
                                         phase_major_ ? span + detail::kMaxGroup : 0);
    if (consecutive_) {
      // Several passes of four vectors of outputs per phase, so splitting the history for
      // the fast FIR (about one filter length per batch) is a small part of the work.
      scratch_cap_ = std::max<std::size_t>(1024, 16 * kLanes * up_);
      phase_tmp_.assign(3 * (scratch_cap_ / up_ + 4), S(0));
    }
    scratch_.assign(channels_ * scratch_cap_, S(0));
    clear();
  }

 public:
  std::size_t oneshot_length(std::size_t in_frames) const override {
    // round(n * up / down) with halves rounded up, in integers.
    const std::uint64_t n = in_frames;
    return static_cast<std::size_t>((2 * n * up_ + down_) / (2 * down_));
  }

  std::size_t output_frames_for(std::size_t in_frames, bool last) const override {
    const std::uint64_t total_in = total_in_ + in_frames;
    std::uint64_t total_out;
    if (last) {
      total_out = std::max<std::uint64_t>(oneshot_length(total_in), ready_count(total_in));
    } else {
      total_out = ready_count(total_in);
    }
    return total_out > emitted_ ? static_cast<std::size_t>(total_out - emitted_) : 0;
  }

  std::size_t process(const StridedConstView& in, bool last, const StridedView& out) override {
    if (finished_) throw std::logic_error("Input after last input");
    const std::size_t expected = output_frames_for(in.frames, last);
    if (out.frames != expected)
      throw std::invalid_argument("output view has the wrong number of frames");
    std::size_t written = 0;
    std::size_t pos = 0;
    do {
      const std::size_t n = std::min(kBlockFrames, in.frames - pos);
      append(in, pos, n);
      pos += n;
      const bool final_block = last && pos == in.frames;
      written += produce(out, written, final_block);
      discard_consumed();
    } while (pos < in.frames);
    if (last) finished_ = true;
    return written;
  }

  void clear() override {
    // The signal is zero before the first sample. The history starts at an even absolute
    // index (the fast FIR splits it by parity; discard_consumed drops whole vectors).
    const std::size_t reach = before_ + static_cast<std::size_t>(history_before());
    const std::size_t zeros = reach + (reach & 1);
    for (auto& h : history_) h.assign(zeros + kLanes, S(0));
    length_ = zeros;
    origin_ = -static_cast<std::int64_t>(zeros);
    total_in_ = 0;
    emitted_ = 0;
    next_index_ = 0;
    next_phase_ = 0;
    clips_ = 0;
    finished_ = false;
  }

  double delay() const override {
    if (finished_) return 0.0;
    const double owed = static_cast<double>(total_in_) * static_cast<double>(up_) /
                            static_cast<double>(down_) -
                        static_cast<double>(emitted_);
    return std::max(0.0, owed);
  }

  double latency_frames() const override {
    return static_cast<double>(after_) * static_cast<double>(up_) / static_cast<double>(down_);
  }
  std::uint64_t num_clips() const override { return clips_; }
  std::size_t num_channels() const override { return channels_; }
  std::size_t taps_per_output() const override { return taps_; }
  std::size_t num_phases() const override { return rows_; }
  bool interpolated_phases() const override { return interpolated_; }
  const char* design_method() const override {
    switch (filter_->kind) {
      case detail::PrototypeKind::kEquiripple:
        return "equiripple";
      case detail::PrototypeKind::kSmoothedEquiripple:
        return "smoothed equiripple";
      case detail::PrototypeKind::kKaiser:
        break;
    }
    return "kaiser";
  }
  Isa isa() const override { return isa_; }
  bool double_precision() const override { return std::is_same<S, double>::value; }
  std::uint64_t out_step() const override { return up_; }
  std::uint64_t in_step() const override { return down_; }

 private:
  // Number of outputs computable from `total_in` input frames without flushing: those whose
  // last tap (integer position + after_) has arrived.
  std::uint64_t ready_count(std::uint64_t total_in) const {
    if (total_in <= after_) return 0;
    const std::uint64_t q = total_in - after_;  // need floor(k * down / up) < q
    return (q * up_ + down_ - 1) / down_;
  }

  void append(const StridedConstView& in, std::size_t start, std::size_t n) {
    if (n == 0) return;
    for (std::size_t c = 0; c < channels_; ++c) {
      auto& h = history_[c];
      h.resize(length_ + n + kLanes, S(0));
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
    total_in_ += n;
  }

  // Scaling by a power of two is exact, so this equals dividing by 32768 or 2^31.
  template <typename T>
  static void convert(const T* src, std::ptrdiff_t stride, std::size_t n, S scale, S* dst) {
    if (stride == 1) {
      for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<S>(src[i]) * scale;
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        dst[i] = static_cast<S>(src[static_cast<std::ptrdiff_t>(i) * stride]) * scale;
      }
    }
  }

  std::size_t produce(const StridedView& out, std::size_t out_pos, bool final_block) {
    std::uint64_t target = ready_count(total_in_);
    if (final_block) {
      target = std::max<std::uint64_t>(target, oneshot_length(total_in_));
      // The signal is zero after its end: pad enough zeros for every remaining output.
      length_ += after_ + 1;
      for (auto& h : history_) h.resize(length_ + kLanes, S(0));
    }
    std::size_t produced = 0;
    if (consecutive_) return produce_consecutive(out, out_pos, target);
    const std::uint64_t step_int = down_ / up_, step_frac = down_ % up_;
    // Outputs whose windows start in the same vector-aligned block of history are computed
    // together so they share sample loads; grouping never changes an output's bits.
    const S* rows[detail::kMaxGroup * 4];
    std::size_t starts[detail::kMaxGroup];
    double weights[detail::kMaxGroup][4];
    S sums[4];
    const S* xs[detail::kMaxGroup * 4];
    std::size_t batch = 0;  // outputs computed into scratch_, not yet stored
    S group_sums[detail::kMaxGroup];
    while (emitted_ < target) {
      // Take up to kMaxGroup whole periods of up_ outputs (at least kMinPeriods) and compute
      // them phase by phase, so each group shares one coefficient row (outputs one period
      // apart are down_ samples apart) and no window has to be cut out with a permutation.
      // Bits are the same as with any grouping.
      const std::uint64_t periods =
          std::min<std::uint64_t>(detail::kMaxGroup, (target - emitted_) / up_);
      const std::uint64_t span = periods * up_;
      if (phase_major_ && periods >= kMinPeriods) {
        if (batch + span > scratch_cap_) {
          store_batch(out, out_pos + produced, batch);
          produced += batch;
          batch = 0;
        }
        for (std::uint64_t p = 0; p < up_; ++p) {
          const std::size_t start = static_cast<std::size_t>(
              static_cast<std::int64_t>(next_index_) - static_cast<std::int64_t>(before_) -
              origin_);
          for (std::size_t j = 0; j < periods; ++j) rows[j] = table_ + next_phase_ * taps_;
          for (std::size_t c = 0; c < channels_; ++c) {
            const S* h = history_[c].data();
            for (std::size_t j = 0; j < periods; ++j) xs[j] = h + start + j * down_;
            kernels_.group(rows, xs, nullptr, taps_, periods, group_sums);
            S* dst = scratch_.data() + c * scratch_cap_ + batch + p;
            for (std::size_t j = 0; j < periods; ++j) dst[j * up_] = group_sums[j];
          }
          next_index_ += step_int;
          next_phase_ += step_frac;
          if (next_phase_ >= up_) {
            next_phase_ -= up_;
            ++next_index_;
          }
        }
        next_index_ += (periods - 1) * down_;  // whole periods: the phase is unchanged
        batch += span;
        emitted_ += span;
        if (batch + detail::kMaxGroup > scratch_cap_ || emitted_ == target) {
          store_batch(out, out_pos + produced, batch);
          produced += batch;
          batch = 0;
        }
        continue;
      }
      std::size_t g = 0;
      bool one_block = true;
      while (g < detail::kMaxGroup && emitted_ + g < target) {
        const std::size_t start = static_cast<std::size_t>(
            static_cast<std::int64_t>(next_index_) - static_cast<std::int64_t>(before_) - origin_);
        if (g > 0) {
          one_block = one_block && (start & ~(kLanes - 1)) == (starts[0] & ~(kLanes - 1));
          if (!one_block && up_ != 1) break;
        }
        starts[g] = start;
        if (!interpolated_) {
          rows[g] = table_ + next_phase_ * taps_;
        } else {
          // Position between interpolation rows, from the exact integer phase so it does not
          // depend on how the stream was chunked.
          const std::uint64_t scaled = next_phase_ * kInterpPhases;
          const std::uint64_t p = scaled / up_;
          const double mu = static_cast<double>(scaled % up_) / static_cast<double>(up_);
          weights[g][0] = -mu * (mu - 1.0) * (mu - 2.0) / 6.0;
          weights[g][1] = (mu + 1.0) * (mu - 1.0) * (mu - 2.0) / 2.0;
          weights[g][2] = -(mu + 1.0) * mu * (mu - 2.0) / 2.0;
          weights[g][3] = (mu + 1.0) * mu * (mu - 1.0) / 6.0;
          for (std::size_t r = 0; r < 4; ++r) {  // rows p .. p+3 are u = (p-1 .. p+2) / P
            rows[4 * g + r] = table_ + (p + r) * taps_;
          }
        }
        ++g;
        next_index_ += step_int;
        next_phase_ += step_frac;
        if (next_phase_ >= up_) {
          next_phase_ -= up_;
          ++next_index_;
        }
      }
      for (std::size_t c = 0; c < channels_; ++c) {
        S* h = history_[c].data();
        if (!interpolated_) {
          for (std::size_t o = 0; o < g; ++o) xs[o] = h + starts[o];
          const S* block = one_block ? h + (starts[0] & ~(kLanes - 1)) : nullptr;
          kernels_.group(rows, xs, block, taps_, g, scratch_.data() + c * scratch_cap_ + batch);
        } else {
          for (std::size_t o = 0; o < g; ++o) {
            for (std::size_t r = 0; r < 4; ++r) xs[r] = h + starts[o];
            kernels_.group(rows + 4 * o, xs, nullptr, taps_, 4, sums);
            const double y = (weights[o][0] * sums[0] + weights[o][1] * sums[1]) +
                             (weights[o][2] * sums[2] + weights[o][3] * sums[3]);
            scratch_[c * scratch_cap_ + batch + o] = static_cast<S>(y);
          }
        }
      }
      batch += g;
      emitted_ += g;
      if (batch + detail::kMaxGroup > scratch_cap_ || emitted_ == target) {
        store_batch(out, out_pos + produced, batch);
        produced += batch;
        batch = 0;
      }
    }
    return produced;
  }

  // Integer up factors (down_ == 1): the outputs of one phase have consecutive windows, so
  // each phase is a plain correlation y[w] = sum_t g[t] x[w + t] over window starts w. The
  // two-parallel fast FIR computes a pair of them from three half-length correlations of the
  // de-interleaved input, 3/4 of the multiply-adds: with u0[k] = x[2k], u1[k] = x[2k + 1],
  // s[k] = u1[k] + u0[k + 1] and A = g_even * u0, B = g_odd * u1, C = (g_even + g_odd) * s,
  //   y[2k] = A[k] + B[k],   y[2k + 1] = (C[k] - A[k + 1]) - B[k],
  // where the parity is that of the absolute input index, so every output is computed the
  // same way however the stream was chunked. Each correlation is the consecutive kernel (one
  // multiply-add chain per output, in tap order).
  std::size_t produce_consecutive(const StridedView& out, std::size_t out_pos,
                                  std::uint64_t target) {
    const std::size_t half = filter_->fast_fir_half;
    const std::size_t skip = filter_->leading_zeros;
    const auto front = static_cast<std::int64_t>(filter_->fast_fir_front);
    const S* split = filter_->fast_fir.data();
    std::size_t produced = 0;
    while (emitted_ < target) {
      const auto count =
          static_cast<std::size_t>(std::min<std::uint64_t>(target - emitted_, scratch_cap_));
      // The history this batch reads: from its first window (rounded down to an even index)
      // to past its last one.
      auto window = [&](std::uint64_t index) {
        return static_cast<std::size_t>(static_cast<std::int64_t>(index) -
                                        static_cast<std::int64_t>(before_) - origin_ +
                                        static_cast<std::int64_t>(skip) - front);
      };
      const std::size_t lo = window(next_index_) & ~std::size_t{1};
      const std::size_t hi = window(next_index_ + (next_phase_ + count - 1) / up_) + 2 * half + 4;
      if ((hi - lo) / 2 + kSplitSlack > split_cap_) {  // room for every channel's split
        split_cap_ = (hi - lo) / 2 + kSplitSlack;
        split_history_.assign(3 * channels_ * split_cap_, S(0));
      }
      for (std::size_t c = 0; c < channels_; ++c) deinterleave(c, lo, hi);
      for (std::size_t p = 0; p < up_ && p < count; ++p) {
        const std::uint64_t phase = (next_phase_ + p) % up_;
        const std::uint64_t index = next_index_ + (next_phase_ + p) / up_;
        // History index of the first tap (after the skipped zeros, before the front ones) of
        // this phase's first output.
        const std::size_t first = window(index);
        const std::size_t n = (count - p + up_ - 1) / up_;
        // The history starts at an even absolute index (clear()), so parity is the index's.
        const std::size_t k_lo = (first - lo) / 2;
        const std::size_t k_hi = (first + n - 1 - lo) / 2;
        const std::size_t pairs = k_hi - k_lo + 1;
        const S* g = split + 3 * phase * half;
        for (std::size_t c = 0; c < channels_; ++c) {
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
            dst[j * up_] = (w & 1) == 0 ? a[k] + b[k] : (cc[k] - a[k + 1]) - b[k];
          }
        }
      }
      next_phase_ += count;
      next_index_ += next_phase_ / up_;
      next_phase_ %= up_;
      emitted_ += count;
      store_batch(out, out_pos + produced, count);
      produced += count;
    }
    return produced;
  }

  // Splits history [lo, hi) of channel c (lo even) into u0, u1 and s (see
  // produce_consecutive), with zeros after them for the kernel's reads past the end (and in
  // place of history beyond its end).
  void deinterleave(std::size_t c, std::size_t lo, std::size_t hi) {
    const std::vector<S, AlignedAllocator<S>>& h = history_[c];
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
  void store_batch(const StridedView& out, std::size_t frame, std::size_t n) {
    for (std::size_t c = 0; c < channels_; ++c) {
      const S* src = scratch_.data() + c * scratch_cap_;
      const std::ptrdiff_t base = static_cast<std::ptrdiff_t>(frame) * out.frame_stride +
                                  static_cast<std::ptrdiff_t>(c) * out.channel_stride;
      const std::ptrdiff_t fs = out.frame_stride;
      switch (out.type) {
        case SampleType::kFloat32: {
          float* dst = static_cast<float*>(out.data) + base;
          for (std::size_t i = 0; i < n; ++i) dst[static_cast<std::ptrdiff_t>(i) * fs] = static_cast<float>(src[i]);
          break;
        }
        case SampleType::kFloat64: {
          double* dst = static_cast<double*>(out.data) + base;
          for (std::size_t i = 0; i < n; ++i) dst[static_cast<std::ptrdiff_t>(i) * fs] = static_cast<double>(src[i]);
          break;
        }
        case SampleType::kInt16: {
          std::int16_t* dst = static_cast<std::int16_t*>(out.data) + base;
          for (std::size_t i = 0; i < n; ++i) {
            dst[static_cast<std::ptrdiff_t>(i) * fs] = static_cast<std::int16_t>(
                round_clip(static_cast<double>(src[i]) * 32768.0, -32768.0, 32767.0));
          }
          break;
        }
        case SampleType::kInt32: {
          std::int32_t* dst = static_cast<std::int32_t*>(out.data) + base;
          for (std::size_t i = 0; i < n; ++i) {
            dst[static_cast<std::ptrdiff_t>(i) * fs] = static_cast<std::int32_t>(round_clip(
                static_cast<double>(src[i]) * 2147483648.0, -2147483648.0, 2147483647.0));
          }
          break;
        }
      }
    }
  }

  // Round to nearest (ties to even) and clip; no dither, so digital silence stays exactly zero.
  double round_clip(double v, double lo, double hi) {
    double r = std::nearbyint(v);
    if (r > hi) {
      ++clips_;
      r = hi;
    } else if (r < lo) {
      ++clips_;
      r = lo;
    } else if (std::isnan(r)) {
      r = 0.0;
    }
    return r;
  }

  // Input kept before the next output's window: the fast FIR's front zeros reach before it.
  std::int64_t history_before() const {
    return consecutive_ ? static_cast<std::int64_t>(filter_->fast_fir_front) : 0;
  }

  void discard_consumed() {
    // Keep history from the first tap of the next output onwards, dropping whole vectors so
    // the history keeps its alignment.
    const std::int64_t keep_from = static_cast<std::int64_t>(next_index_) -
                                   static_cast<std::int64_t>(before_) - history_before();
    const std::int64_t drop_raw = std::min<std::int64_t>(keep_from - origin_,
                                                         static_cast<std::int64_t>(length_));
    const std::int64_t drop = drop_raw / static_cast<std::int64_t>(kLanes) *
                              static_cast<std::int64_t>(kLanes);
    if (drop <= 0) return;
    for (auto& h : history_) {
      h.erase(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(drop));
    }
    length_ -= static_cast<std::size_t>(drop);
    origin_ += drop;
  }

  std::uint64_t up_, down_;
  std::size_t channels_;
  Isa isa_;
  detail::Kernels<S> kernels_;
  // Planar history per channel: length_ samples, then kLanes zeros so a vector load that
  // starts inside the history never leaves the allocation.
  std::vector<std::vector<S, AlignedAllocator<S>>> history_;
  std::size_t length_ = 0;
  std::shared_ptr<const FilterDesign<S>> filter_;  // shared, immutable
  const S* table_ = nullptr;
  static constexpr std::size_t kScratchMin = 256;
  static constexpr std::uint64_t kMaxPhaseMajorScratch = std::uint64_t{1} << 20;  // samples
  static constexpr std::uint64_t kMaxConsecutiveUp = 64;
  static constexpr std::uint64_t kMinPeriods = 2;
  bool consecutive_ = false;
  std::vector<S> phase_tmp_;  // one phase's correlations A, B, C before they are combined
  // The de-interleaved history [channel][u0, u1, s][split_cap_] of the fast FIR.
  std::vector<S, AlignedAllocator<S>> split_history_;
  std::size_t split_cap_ = 0;
  static constexpr std::size_t kSplitSlack = 4 * kLanes;
  bool phase_major_ = false;
  std::size_t scratch_cap_ = kScratchMin;
  std::vector<S> scratch_;  // [channel][scratch_cap_] outputs awaiting conversion
  std::size_t taps_ = 0, before_ = 0, after_ = 0, rows_ = 0;
  bool interpolated_ = false;

  std::int64_t origin_ = 0;     // absolute input index of history_[c][0]
  std::uint64_t total_in_ = 0;  // input frames received
  std::uint64_t emitted_ = 0;   // output frames produced
  std::uint64_t next_index_ = 0, next_phase_ = 0;  // next output at (index + phase / up_)
  std::uint64_t clips_ = 0;
  bool finished_ = false;
};

}  // namespace

DesignCacheStats design_cache_stats() {
  DesignCache& cache = design_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  return {cache.bytes, cache.entries.size(), kDesignCacheBytes, cache.designs_computed};
}

Resampler::Resampler(double in_rate, double out_rate, std::size_t num_channels, Quality quality,
                     SampleType io_type, Isa isa) {
  if (!(std::isfinite(in_rate) && std::isfinite(out_rate)) || in_rate <= 0.0 || out_rate <= 0.0)
    throw std::invalid_argument("Sample rate should be over 0");
  if (num_channels == 0) throw std::invalid_argument("Channel num must be at least 1");
  if (!quality_is_valid(static_cast<int>(quality)))
    throw std::invalid_argument("Quality must be one of [QQ, LQ, MQ, HQ, VHQ]");
  if (!isa_supported(isa)) throw std::invalid_argument("instruction set not supported");
  const FilterSpec spec = filter_spec(quality);
  const auto [up, down] = rate_ratio(in_rate, out_rate);
  const bool use_double =
      spec.double_precision || io_type == SampleType::kFloat64 || io_type == SampleType::kInt32;
  if (use_double) {
    impl_ = std::make_unique<PolyphaseResampler<double>>(up, down, num_channels, spec, isa);
  } else {
    impl_ = std::make_unique<PolyphaseResampler<float>>(up, down, num_channels, spec, isa);
  }
}

Resampler::~Resampler() = default;
Resampler::Resampler(Resampler&&) noexcept = default;
Resampler& Resampler::operator=(Resampler&&) noexcept = default;

std::size_t Resampler::output_frames_for(std::size_t in_frames, bool last) const {
  return impl_->output_frames_for(in_frames, last);
}
std::size_t Resampler::process(const StridedConstView& in, bool last, const StridedView& out) {
  if (in.frames > 0 && in.data == nullptr) throw std::invalid_argument("null input");
  return impl_->process(in, last, out);
}
void Resampler::clear() { impl_->clear(); }
double Resampler::delay() const { return impl_->delay(); }
double Resampler::latency_frames() const { return impl_->latency_frames(); }
std::uint64_t Resampler::num_clips() const { return impl_->num_clips(); }
std::size_t Resampler::num_channels() const { return impl_->num_channels(); }
std::size_t Resampler::taps_per_output() const { return impl_->taps_per_output(); }
std::size_t Resampler::num_phases() const { return impl_->num_phases(); }
bool Resampler::interpolated_phases() const { return impl_->interpolated_phases(); }
const char* Resampler::design_method() const { return impl_->design_method(); }
Isa Resampler::isa() const { return impl_->isa(); }
bool Resampler::double_precision() const { return impl_->double_precision(); }
std::uint64_t Resampler::out_step() const { return impl_->out_step(); }
std::uint64_t Resampler::in_step() const { return impl_->in_step(); }
std::size_t Resampler::oneshot_length(std::size_t in_frames) const {
  return impl_->oneshot_length(in_frames);
}

std::size_t Resampler::oneshot_frames(std::size_t in_frames) const {
  return static_cast<std::size_t>(std::max<std::uint64_t>(
      impl_->oneshot_length(in_frames), impl_->outputs_ready_after(in_frames)));
}

namespace {

// A thread costs tens of microseconds to start and warm up: each must have at least this much
// work (about 0.2 ms) to be worth it.
constexpr double kMinMultiplyAddsPerThread = 5e6;
constexpr unsigned kMaxThreads = 64;

std::size_t item_size(SampleType type) {
  switch (type) {
    case SampleType::kFloat32:
    case SampleType::kInt32:
      return 4;
    case SampleType::kFloat64:
      return 8;
    case SampleType::kInt16:
      return 2;
  }
  return 1;
}

template <typename View>
View frames_of(const View& v, std::uint64_t from, std::uint64_t count) {
  View part = v;
  using Byte = std::conditional_t<std::is_const_v<std::remove_pointer_t<decltype(v.data)>>,
                                  const unsigned char, unsigned char>;
  if (count > 0) {
    part.data = static_cast<Byte*>(v.data) + static_cast<std::ptrdiff_t>(from) * v.frame_stride *
                                                 static_cast<std::ptrdiff_t>(item_size(v.type));
  }
  part.frames = static_cast<std::size_t>(count);
  return part;
}

// How a one-shot conversion is split: part j feeds input [in_begin[j], in_end[j]) to its own
// fresh stream, which produces outputs [out_begin[j], out_begin[j + 1]); the last part
// flushes. Each stream starts where its first output's filter window starts, so every output
// sees exactly the samples it sees in one pass.
// Part 0 runs on the stream itself (cleared), the others on copies sharing its design.
struct OneshotPlan {
  std::vector<std::uint64_t> in_begin, in_end, out_begin;
  std::vector<std::unique_ptr<ResamplerImplBase>> copies;  // copies[j - 1] runs part j
  [[nodiscard]] unsigned parts() const { return static_cast<unsigned>(copies.size()) + 1; }
};

OneshotPlan plan_oneshot(const ResamplerImplBase& impl, std::uint64_t n, unsigned threads) {
  const std::uint64_t total =
      std::max<std::uint64_t>(impl.oneshot_length(static_cast<std::size_t>(n)),
                              impl.outputs_ready_after(n));
  const double work = static_cast<double>(total) * static_cast<double>(impl.num_channels()) *
                      static_cast<double>(impl.taps_per_output());
  const auto parts = static_cast<unsigned>(std::max(
      1.0, std::min({static_cast<double>(std::max(1u, threads)),
                     work / kMinMultiplyAddsPerThread, static_cast<double>(kMaxThreads)})));
  OneshotPlan plan;
  plan.in_begin.assign(parts, 0);
  plan.in_end.assign(parts, 0);
  plan.out_begin.assign(parts + 1, 0);
  plan.out_begin[parts] = total;
  for (unsigned j = 0; j < parts; ++j) {
    plan.in_end[j] = j + 1 == parts ? n : n * (j + 1) / parts;
    if (j > 0) plan.out_begin[j] = impl.outputs_ready_after(plan.in_end[j - 1]);
  }
  // Part 0 is a fresh stream fed in_end[0] samples: it produces out_begin[1] outputs by
  // definition. Each later part must check out.
  bool valid = parts == 1 || plan.out_begin[1] > 0;
  for (unsigned j = 1; valid && j < parts; ++j) {
    plan.copies.push_back(impl.fresh_copy());
    ResamplerImplBase& stream = *plan.copies.back();
    plan.in_begin[j] = stream.start_at_output(plan.out_begin[j]);
    const bool last = j + 1 == parts;
    valid = plan.out_begin[j] < plan.out_begin[j + 1] && plan.in_begin[j] <= plan.in_end[j] &&
            stream.output_frames_for(
                static_cast<std::size_t>(plan.in_end[j] - plan.in_begin[j]), last) ==
                plan.out_begin[j + 1] - plan.out_begin[j];
  }
  if (!valid) {  // a split that would not partition the output (tiny inputs): one pass
    plan.copies.clear();
    plan.in_begin = {0};
    plan.in_end = {n};
    plan.out_begin = {0, total};
  }
  return plan;
}

}  // namespace

unsigned Resampler::oneshot_parts(std::size_t in_frames, unsigned threads) const {
  return plan_oneshot(*impl_, in_frames, threads).parts();
}

void Resampler::oneshot(const StridedConstView& in, const StridedView& out, unsigned threads) {
  if (out.frames != oneshot_frames(in.frames))
    throw std::invalid_argument("output view has the wrong number of frames");
  if (in.frames > 0 && in.data == nullptr) throw std::invalid_argument("null input");
  impl_->clear();
  OneshotPlan plan = plan_oneshot(*impl_, in.frames, threads);
  const unsigned parts = plan.parts();
  auto run = [&](unsigned j) {
    ResamplerImplBase& stream = j == 0 ? *impl_ : *plan.copies[j - 1];
    stream.process(
        frames_of(in, plan.in_begin[j], plan.in_end[j] - plan.in_begin[j]), j + 1 == parts,
        frames_of(out, plan.out_begin[j], plan.out_begin[j + 1] - plan.out_begin[j]));
  };
  std::vector<std::exception_ptr> errors(parts);
  auto guarded = [&](unsigned j) {
    try {
      run(j);
    } catch (...) {
      errors[j] = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(parts - 1);
  unsigned started = 1;  // parts 1 .. started - 1 have threads
  for (; started < parts; ++started) {
    try {
      workers.emplace_back(guarded, started);
    } catch (const std::system_error&) {
      break;  // no more threads to be had (a process limit): this thread does the rest
    }
  }
  guarded(0);
  for (unsigned j = started; j < parts; ++j) guarded(j);
  for (auto& w : workers) w.join();
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace anunzi
