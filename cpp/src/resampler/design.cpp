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
std::shared_ptr<const FilterDesign<S>> design_filter(const StageSpec& stage) {
  constexpr std::size_t kW = kLanes<S>;
  const std::uint64_t up = stage.up, down = stage.down;
  auto d = std::make_shared<FilterDesign<S>>();
  const Prototype h = stage.halfband ? Prototype::halfband(stage.spec)
                                     : Prototype::design(up, down, stage.spec);
  d->kind = h.kind();
  d->halfband = stage.halfband;
  const double half_width = h.half_width();
  const auto w_floor = static_cast<std::size_t>(std::floor(half_width));
  // Taps cover input offsets m in [-before, after] around the output's integer position.
  // Interpolated rows reach a little further (u in [-1/P, 1 + 2/P]) and are padded with zero
  // taps to the vector width on the past side, so the padding adds no latency.
  auto layout = [&](bool interpolated) {
    d->interpolated = interpolated;
    d->after = w_floor + (interpolated ? 2 : 1);
    const std::size_t before_min = w_floor + (interpolated ? 1 : 0);
    const std::size_t taps = d->after + before_min + 1;
    d->taps = interpolated ? (taps + kW - 1) / kW * kW : taps;
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
  d->rows = rows;
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
      const auto m = static_cast<std::ptrdiff_t>(n) - static_cast<std::ptrdiff_t>(d->before);
      // A half-band's taps at even offsets from its centre are zero; sin(k pi) computes as
      // 1e-16, which would cost a multiply-add each.
      const bool zero = stage.halfband && m != 0 && m % 2 == 0;
      d->table[r * d->taps + n] =
          zero ? S(0) : static_cast<S>(gain * h(u - static_cast<double>(m)));
    }
  }
  if (!d->interpolated) {
    // Drop the columns that are zero in every row: the first ones shorten the window, the
    // last ones the latency.
    auto zero_column = [&](std::size_t n) {
      for (std::size_t r = 0; r < d->rows; ++r) {
        if (d->table[r * d->taps + n] != S(0)) return false;
      }
      return true;
    };
    std::size_t first = 0, last = d->taps;
    while (first + 1 < last && zero_column(first)) ++first;
    while (last - 1 > first && zero_column(last - 1)) --last;
    if (first > 0 || last < d->taps) {
      const std::size_t taps = last - first;
      AlignedVector<S> trimmed(d->rows * taps);
      for (std::size_t r = 0; r < d->rows; ++r) {
        for (std::size_t n = 0; n < taps; ++n) {
          trimmed[r * taps + n] = d->table[r * d->taps + first + n];
        }
      }
      d->before -= first;
      d->after -= d->taps - last;
      d->taps = taps;
      d->table = std::move(trimmed);
    }
  }
  std::size_t nonzero = 0;
  for (const S v : d->table) nonzero += v != S(0) ? 1 : 0;
  d->nonzero_taps = static_cast<double>(nonzero) / static_cast<double>(d->rows);
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
    bool flat_passband, halfband;
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
std::shared_ptr<const FilterDesign<S>> cached_design(const StageSpec& stage) {
  constexpr bool kDouble = std::is_same<S, double>::value;
  const FilterSpec& spec = stage.spec;
  DesignCache& cache = design_cache();
  // Finds the entry for this design and makes it the most recently used; caller holds the lock.
  auto find = [&]() -> std::shared_ptr<const FilterDesign<S>> {
    for (std::size_t i = 0; i < cache.entries.size(); ++i) {
      const DesignCache::Entry& e = cache.entries[i];
      if (e.up == stage.up && e.down == stage.down && e.passband == spec.passband_end &&
          e.stopband == spec.stopband_begin && e.attenuation == spec.attenuation_db &&
          e.flat_passband == spec.flat_passband && e.halfband == stage.halfband &&
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
  auto design = design_filter<S>(stage);  // outside the lock: may take seconds
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
  cache.entries.push_back({stage.up, stage.down, spec.passband_end, spec.stopband_begin,
                           spec.attenuation_db, spec.flat_passband, stage.halfband, kDouble,
                           bytes, design});
  cache.bytes += bytes;
  return design;
}

template std::shared_ptr<const FilterDesign<float>> cached_design<float>(const StageSpec&);
template std::shared_ptr<const FilterDesign<double>> cached_design<double>(const StageSpec&);

}  // namespace anunzi::detail

namespace anunzi {

DesignCacheStats design_cache_stats() {
  detail::DesignCache& cache = detail::design_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  return {cache.bytes, cache.entries.size(), detail::kDesignCacheBytes, cache.designs_computed};
}

}  // namespace anunzi
