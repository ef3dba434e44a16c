#include "design.hpp"

#include <cmath>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "anunzi/resampler.hpp"

namespace anunzi::detail {
namespace {

template <typename S>
std::shared_ptr<const FilterDesign<S>> design_filter(std::uint64_t up, std::uint64_t down,
                                                     const FilterSpec& spec) {
  constexpr std::size_t kW = kLanes<S>;
  auto d = std::make_shared<FilterDesign<S>>();
  const Prototype h = Prototype::design(up, down, spec);
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
    d->taps = (d->after + before_min + 1 + kW - 1) / kW * kW;
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

}  // namespace

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

template std::shared_ptr<const FilterDesign<float>> cached_design<float>(std::uint64_t,
                                                                      std::uint64_t,
                                                                      const FilterSpec&);
template std::shared_ptr<const FilterDesign<double>> cached_design<double>(std::uint64_t,
                                                                        std::uint64_t,
                                                                        const FilterSpec&);

}  // namespace anunzi::detail

namespace anunzi {

DesignCacheStats design_cache_stats() {
  detail::DesignCache& cache = detail::design_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  return {cache.bytes, cache.entries.size(), detail::kDesignCacheBytes, cache.designs_computed};
}

}  // namespace anunzi
