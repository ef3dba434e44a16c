#include "stage.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace anunzi::detail {
namespace {

// kLanes tiles outputs with vectors of `lanes` outputs aligned to a multiple of `lanes`
// while the coefficient blocks of one cycle of that tiling stay this small (values); beyond it,
// each period of `up` outputs is tiled on its own and its last vector may be part idle.
constexpr std::uint64_t kMaxAlignedTileValues = std::uint64_t{1} << 16;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// floor(n * num / den) without overflow for n * num beyond 64 bits.
std::uint64_t scale_floor(std::uint64_t n, std::uint64_t num, std::uint64_t den) {
  return n / den * num + n % den * num / den;
}

std::uint64_t gcd_u64(std::uint64_t a, std::uint64_t b) {
  while (b != 0) {
    const std::uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Outputs per cycle of the kLanes tiling (see kMaxAlignedTileValues).
std::uint64_t lanes_tile(const StageState& st, std::size_t lanes) {
  const std::uint64_t aligned = st.up / gcd_u64(st.up, lanes) * lanes;
  const double span = static_cast<double>(st.taps) +
                      static_cast<double>(lanes * st.down) / static_cast<double>(st.up) + 1.0;
  return static_cast<double>(aligned) * span <= static_cast<double>(kMaxAlignedTileValues)
             ? aligned
             : st.up;
}

// Which kernel computes a stage, as measured with either forced (one-shot, AVX-512): kLanes
// where there are too many phases for kCorrelate (160/147: 3.8x faster), and for decimations
// by one phase with short runs and no zero taps (1/3 at LQ, 101 taps in runs of 2: 1.26x);
// kCorrelate everywhere else (3/2 with 18 taps: 1.15x, 3/1 at QQ: 1.3x, 2/1 and 2/3 at HQ,
// half-bands, whose zero taps kLanes would multiply).
StageKernel choose_kernel(const StageState& st, std::size_t lanes) {
  if (st.interpolated) return StageKernel::kInterpolated;
  if (st.up > kFewPhases) return StageKernel::kLanes;  // a call's outputs spread too thin
  const double run = static_cast<double>(st.taps) / static_cast<double>(lanes * st.down);
  const bool dense = st.nonzero_taps > 0.9 * static_cast<double>(st.taps);
  return st.up == 1 && run < 4.0 && dense ? StageKernel::kLanes : StageKernel::kCorrelate;
}

// Whether x[0 .. n) holds no NaN and no infinity: x * 0 is NaN exactly for those. Eight
// partial sums, so the compiler vectorises the loop without reordering a float sum.
template <typename S>
bool all_finite(const S* x, std::size_t n) {
  S partial[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (std::size_t j = 0; j < 8; ++j) partial[j] += x[i + j] * S(0);
  }
  S total = S(0);
  for (; i < n; ++i) total += x[i] * S(0);
  for (const S p : partial) total += p;
  return total == S(0);
}

}  // namespace

template <typename S>
struct Stage<S>::Layout {
  // kCorrelate, per row: its tap runs (longest first), how many of each length, their
  // coefficients, and the residue modulo `down` of its outputs' first tap index.
  struct Phase {
    std::vector<TapRun> runs;
    std::uint32_t groups[kMaxRunTaps] = {};
    AlignedVector<S> coefs;
    std::int64_t residue = 0;
  };
  std::vector<Phase> phases;
  // kLanes: a cycle of `tile` outputs (a multiple of up, so it starts at the input index
  // tile * down / up times its number) in blocks of `lanes` consecutive outputs; coefficient
  // blocks [block][u][lane] of `span` taps each, and where each block's first window starts
  // in the cycle: floor(lanes * b * down / up).
  std::uint64_t tile = 0;
  std::size_t span = 0;
  AlignedVector<S> blocks;
  std::vector<std::uint64_t> block_start;
  // kLanes: where each lane's own taps start in its block's window ([block][lane]), `taps` long.
  std::vector<std::uint32_t> lane_shift;
};

template <typename S>
std::shared_ptr<const typename Stage<S>::Layout> Stage<S>::make_layout(
    const StageState& st, const Kernels<S>& k, const FilterDesign<S>& design) {
  auto layout = std::make_shared<Layout>();
  const std::uint64_t up = st.up, down = st.down;
  const std::size_t lanes = k.lanes, taps = design.taps;
  auto coef = [&](std::uint64_t row, std::size_t t) { return design.table[row * taps + t]; };
  if (st.kernel == StageKernel::kCorrelate) {
    layout->phases.resize(up);
    const std::size_t stride = lanes * down;  // taps whose windows are one vector apart
    for (std::uint64_t n = 0; n < up; ++n) {
      const std::uint64_t row = n * down % up;
      typename Layout::Phase& phase = layout->phases[row];
      const auto first_tap = static_cast<std::int64_t>(n * down / up) -
                             static_cast<std::int64_t>(st.before);
      const auto d = static_cast<std::int64_t>(down);
      phase.residue = first_tap - floor_div(first_tap, d) * d;
      std::vector<TapRun> runs;
      std::vector<std::vector<S>> run_coefs;
      for (std::size_t t0 = 0; t0 < stride && t0 < taps; ++t0) {
        // The taps t0, t0 + stride, ...: consecutive nonzero ones form runs of at most
        // k.max_run, split evenly.
        std::size_t t = t0;
        while (t < taps) {
          if (coef(row, t) == S(0)) {
            t += stride;
            continue;
          }
          std::size_t length = 0;
          while (t + length * stride < taps && coef(row, t + length * stride) != S(0)) ++length;
          const std::size_t pieces = (length + k.max_run - 1) / k.max_run;
          for (std::size_t p = 0; p < pieces; ++p) {
            const std::size_t begin = length * p / pieces, end = length * (p + 1) / pieces;
            const auto pos = phase.residue + static_cast<std::int64_t>(t + begin * stride);
            TapRun run{static_cast<std::uint32_t>(pos % d), static_cast<std::int32_t>(pos / d),
                       static_cast<std::uint32_t>(end - begin), 0};
            std::vector<S> c;
            for (std::size_t i = begin; i < end; ++i) c.push_back(coef(row, t + i * stride));
            runs.push_back(run);
            run_coefs.push_back(std::move(c));
          }
          t += length * stride;
        }
      }
      std::vector<std::size_t> order(runs.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return runs[a].count > runs[b].count; });
      for (std::size_t i : order) {
        TapRun run = runs[i];
        run.coef = static_cast<std::uint32_t>(phase.coefs.size());
        phase.coefs.insert(phase.coefs.end(), run_coefs[i].begin(), run_coefs[i].end());
        phase.runs.push_back(run);
        ++phase.groups[kMaxRunTaps - run.count];
      }
    }
  } else if (st.kernel == StageKernel::kLanes) {
    const std::uint64_t tile = layout->tile = lanes_tile(st, lanes);
    const std::size_t blocks = (tile + lanes - 1) / lanes;
    std::vector<std::size_t> shift(blocks * lanes, 0);
    std::size_t widest = 0;
    layout->block_start.resize(blocks);
    for (std::size_t b = 0; b < blocks; ++b) {
      layout->block_start[b] = b * lanes * down / up;
      for (std::size_t l = 0; l < lanes && b * lanes + l < tile; ++l) {
        shift[b * lanes + l] = (b * lanes + l) * down / up - layout->block_start[b];
        widest = std::max(widest, shift[b * lanes + l]);
      }
    }
    layout->span = taps + widest;
    layout->lane_shift.assign(shift.begin(), shift.end());
    layout->blocks.assign(blocks * layout->span * lanes, S(0));
    for (std::size_t b = 0; b < blocks; ++b) {
      for (std::size_t l = 0; l < lanes && b * lanes + l < tile; ++l) {
        const std::uint64_t row = (b * lanes + l) * down % up;
        for (std::size_t t = 0; t < taps; ++t) {
          const std::size_t u = t + shift[b * lanes + l];
          layout->blocks[(b * layout->span + u) * lanes + l] = coef(row, t);
        }
      }
    }
  }
  return layout;
}

template <typename S>
Stage<S>::Stage(StageState& st, std::size_t channels, Isa isa,
                std::shared_ptr<const FilterDesign<S>> design)
    : kernels_(kernels_for<S>(isa)), design_(std::move(design)), history_(channels) {
  st.taps = design_->taps;
  st.before = design_->before;
  st.after = design_->after;
  st.rows = design_->rows;
  st.interpolated = design_->interpolated;
  st.halfband = design_->halfband;
  st.kind = design_->kind;
  st.nonzero_taps = design_->nonzero_taps;
  st.kernel = choose_kernel(st, kernels_.lanes);
  {
    std::lock_guard<std::mutex> lock(design_->layouts_mutex);
    std::shared_ptr<const void>& cached = design_->layouts[static_cast<int>(isa)];
    if (!cached) cached = make_layout(st, kernels_, *design_);
    layout_ = std::static_pointer_cast<const Layout>(cached);
  }
  // Room for the kernels' reads past the last window: a lanes block's span, a correlate
  // block's rounding to a whole vector.
  slack_ = layout_->span + st.taps + 4 * kernels_.lanes + 64;
  planar_ = st.kernel == StageKernel::kCorrelate && st.down > 1;
  rows_ = planar_ ? static_cast<std::size_t>(st.down) : 1;
  clear(st);
}

template <typename S>
Stage<S>::Stage(StageState& st, const Stage& other)
    : kernels_(other.kernels_),
      design_(other.design_),
      layout_(other.layout_),
      history_(other.history_.size()),
      slack_(other.slack_),
      planar_(other.planar_),
      rows_(other.rows_) {
  clear(st);
}

template <typename S>
std::int64_t Stage<S>::history_start(const StageState& st) const {
  const auto first_tap =
      static_cast<std::int64_t>(st.next_index) - static_cast<std::int64_t>(st.before);
  switch (st.kernel) {
    case StageKernel::kCorrelate: {
      // The sub-streams start at a multiple of `down`.
      const auto d = static_cast<std::int64_t>(st.down);
      return floor_div(first_tap, d) * d;
    }
    case StageKernel::kLanes: {
      // The vector of outputs the next output belongs to starts earlier in its cycle.
      const std::uint64_t j = st.emitted % layout_->tile;
      const std::uint64_t b = j / kernels_.lanes;
      return first_tap - static_cast<std::int64_t>(j * st.down / st.up) +
             static_cast<std::int64_t>(layout_->block_start[b]);
    }
    case StageKernel::kInterpolated:
      break;
  }
  return first_tap;
}

template <typename S>
void Stage<S>::resize_history(std::size_t length, std::size_t zero_from) {
  if (!planar_) {
    for (auto& h : history_) {
      h.resize(length + slack_);
      std::fill(h.begin() + static_cast<std::ptrdiff_t>(zero_from), h.end(), S(0));
    }
    return;
  }
  // Rows of row_cap_ columns, all zero past the samples held (writes, discard_consumed and
  // this keep it so): the kernels read a little past the last window. zero_from is 0 for a
  // fresh history and at least the samples held otherwise.
  const std::size_t columns = (length + rows_ - 1) / rows_ + slack_ / rows_ + 2 * kernels_.lanes;
  if (columns > row_cap_) {
    const std::size_t cap = std::max(columns, 2 * row_cap_);
    const std::size_t keep = std::min(row_cap_, (zero_from + rows_ - 1) / rows_);
    for (auto& h : history_) {
      SampleVector<S> grown(rows_ * cap);
      for (std::size_t r = 0; r < rows_; ++r) {
        const S* from = h.data() + r * row_cap_;
        S* to = grown.data() + r * cap;
        std::copy(from, from + keep, to);
        std::fill(to + keep, to + cap, S(0));
      }
      h.swap(grown);
    }
    row_cap_ = cap;
  }
  if (zero_from == 0) {
    for (auto& h : history_) std::fill(h.begin(), h.end(), S(0));
  }
}

template <typename S>
void Stage<S>::put(std::size_t c, const S* src, std::size_t n) {
  if (!planar_) {
    std::copy(src, src + n, history_[c].data() + length_ - n);
    return;
  }
  // Sample p (from origin_) is row p % rows_, column p / rows_: the first few one by one up
  // to a whole group of rows_, whole groups by the split kernel, the rest one by one.
  S* h = history_[c].data();
  std::size_t p = length_ - n, i = 0;
  for (; i < n && p % rows_ != 0; ++i, ++p) h[(p % rows_) * row_cap_ + p / rows_] = src[i];
  const std::size_t groups = (n - i) / rows_;
  row_ptrs_.resize(rows_);
  for (std::size_t r = 0; r < rows_; ++r) row_ptrs_[r] = h + r * row_cap_ + p / rows_;
  kernels_.deinterleave(src + i, rows_, groups, row_ptrs_.data());
  i += groups * rows_;
  p += groups * rows_;
  for (; i < n; ++i, ++p) h[(p % rows_) * row_cap_ + p / rows_] = src[i];
}

template <typename S>
void Stage<S>::clear(StageState& st) {
  st.restart();
  // The signal is zero before the first sample.
  origin_ = std::min<std::int64_t>(0, history_start(st));
  length_ = static_cast<std::size_t>(-origin_);
  resize_history(length_, 0);
}

template <typename S>
std::uint64_t Stage<S>::start_at_output(StageState& st, std::uint64_t first) {
  clear(st);
  if (first == 0) return 0;
  st.next_index = scale_floor(first, st.down, st.up);
  st.next_phase = first % st.up * st.down % st.up;
  st.emitted = first;
  origin_ = history_start(st);
  const std::uint64_t from = origin_ > 0 ? static_cast<std::uint64_t>(origin_) : 0;
  length_ = static_cast<std::size_t>(static_cast<std::int64_t>(from) - origin_);  // zeros
  resize_history(length_, 0);
  st.total_in = from;
  return from;
}

template <typename S>
void Stage<S>::grow(StageState& st, std::size_t n) {
  resize_history(length_ + n, length_ + n);  // the caller writes the n new samples
  length_ += n;
  st.total_in += n;
}

template <typename S>
void Stage<S>::pad_for(const StageState& st, std::uint64_t outputs) {
  const std::uint64_t needed = st.inputs_needed(outputs);
  if (needed <= st.total_in) return;
  const auto zeros = static_cast<std::size_t>(needed - st.total_in);
  resize_history(length_ + zeros, length_);
  length_ += zeros;
}

template <typename S>
void Stage<S>::produce(StageState& st, std::size_t count, S* const* dst) {
  if (count == 0) return;
  switch (st.kernel) {
    case StageKernel::kCorrelate:
      return produce_correlate(st, count, dst);
    case StageKernel::kLanes:
      return produce_lanes(st, count, dst);
    case StageKernel::kInterpolated:
      return produce_interpolated(st, count, dst);
  }
}

template <typename S>
void Stage<S>::advance(StageState& st, std::uint64_t count) {
  const std::uint64_t steps = st.next_phase + count % st.up * st.down;
  st.next_index += count / st.up * st.down + steps / st.up;
  st.next_phase = steps % st.up;
  st.emitted += count;
}

template <typename S>
void Stage<S>::produce_correlate(StageState& st, std::size_t count, S* const* dst) {
  // An interpolation's phases are computed into rows and interleaved: in batches small enough
  // that the rows are still in L1 when they are read back (a tenth faster at 8k -> 16k).
  constexpr std::size_t kPerPhase = 1024;
  const std::size_t batch = st.up > 1 ? kPerPhase * static_cast<std::size_t>(st.up) : count;
  batch_dst_.resize(history_.size());
  for (std::size_t done = 0; done < count; done += batch) {
    const std::size_t n = std::min(batch, count - done);
    for (std::size_t c = 0; c < history_.size(); ++c) batch_dst_[c] = dst[c] + done;
    correlate_batch(st, n, batch_dst_.data());
    advance(st, n);
  }
}

template <typename S>
void Stage<S>::correlate_batch(const StageState& st, std::size_t count, S* const* dst) {
  const std::uint64_t up = st.up, down = st.down;
  const auto d = static_cast<std::int64_t>(down);
  const auto before = static_cast<std::int64_t>(st.before);
  const std::size_t per_phase = (count + up - 1) / up;
  phase_stride_ = (per_phase + 15) / 16 * 16;  // 64-byte aligned phases
  if (phase_out_.size() < up * phase_stride_) phase_out_.assign(up * phase_stride_, S(0));
  const std::size_t channels = history_.size();
  std::vector<const S*>& streams = stream_ptrs_;
  streams.resize(down);
  for (std::size_t c = 0; c < channels; ++c) {
    for (std::uint64_t j = 0; j < up && j < count; ++j) {
      const std::uint64_t steps = st.next_phase + j * down;
      const std::uint64_t row = steps % up;
      const std::int64_t first_tap =
          static_cast<std::int64_t>(st.next_index + steps / up) - before;
      const typename Layout::Phase& phase = layout_->phases[row];
      // The history's rows are the sub-streams, origin_ a multiple of down (history_start).
      const auto column =
          static_cast<std::size_t>((first_tap - origin_ - phase.residue) / d);
      for (std::uint64_t r = 0; r < down; ++r) {
        streams[r] = history_[c].data() + r * row_cap_ + column;
      }
      // One phase straight into the output; more, each into its own row, then interleaved.
      kernels_.correlate(phase.runs.data(), phase.groups, phase.coefs.data(), streams.data(),
                         (count - 1 - j) / up + 1,
                         up == 1 ? dst[c] : phase_out_.data() + j * phase_stride_);
    }
    if (up > 1) {
      // Phase j holds outputs j, j + up, ...: whole groups of up outputs, then the rest.
      phase_ptrs_.resize(up);
      for (std::uint64_t j = 0; j < up; ++j) {
        phase_ptrs_[j] = phase_out_.data() + j * phase_stride_;
      }
      const std::size_t whole = count / up;
      kernels_.interleave(phase_ptrs_.data(), up, whole, dst[c]);
      for (std::size_t i = whole * up; i < count; ++i) {
        dst[c][i] = phase_out_[(i % up) * phase_stride_ + whole];
      }
    }
  }
}

template <typename S>
void Stage<S>::produce_lanes(StageState& st, std::size_t count, S* const* dst) {
  const std::uint64_t up = st.up, down = st.down, tile = layout_->tile;
  const std::size_t lanes = kernels_.lanes, span = layout_->span;
  const std::size_t blocks_per_tile = (tile + lanes - 1) / lanes;
  // Block (cycle k, b) holds outputs k * tile + b * lanes + [0, lanes) of the cycles this
  // call touches, counted from the cycle of `emitted`; `rel` is its first output relative to
  // `emitted`, its window starts at base + k * cycle_in + block_start[b] in the history.
  const std::uint64_t j0 = st.emitted % tile;
  const auto cycle_in = static_cast<std::int64_t>(tile / up * down);
  const std::int64_t base = static_cast<std::int64_t>(st.next_index - j0 * down / up) -
                            static_cast<std::int64_t>(st.before) - origin_;
  const auto n = static_cast<std::int64_t>(count);
  const std::int64_t cycles = (n + static_cast<std::int64_t>(j0 + tile) - 1) /
                              static_cast<std::int64_t>(tile);
  auto rel_of = [&](std::int64_t k, std::size_t b) {
    return k * static_cast<std::int64_t>(tile) + static_cast<std::int64_t>(b * lanes) -
           static_cast<std::int64_t>(j0);
  };
  // Blocks of the same b share their coefficients: with enough cycles, each b's blocks are
  // computed kMaxLaneBlocks at a time; else the blocks in output order.
  lane_blocks_.clear();
  const bool by_b = cycles >= static_cast<std::int64_t>(kMaxLaneBlocks);
  for (std::size_t outer = 0; outer < (by_b ? blocks_per_tile : 1); ++outer) {
    for (std::int64_t k = 0; k < cycles; ++k) {
      for (std::size_t b = by_b ? outer : 0; b < (by_b ? outer + 1 : blocks_per_tile); ++b) {
        const std::int64_t rel = rel_of(k, b);
        if (rel + static_cast<std::int64_t>(lanes) <= 0 || rel >= n) continue;
        lane_blocks_.push_back({b, rel, static_cast<std::size_t>(
                                            base + k * cycle_in +
                                            static_cast<std::int64_t>(layout_->block_start[b]))});
      }
    }
  }
  if (phase_out_.size() < kMaxLaneBlocks * lanes) phase_out_.assign(kMaxLaneBlocks * lanes, S(0));
  // A lane multiplies the whole window of its block, zero coefficients included, and 0 * inf
  // is NaN: a non-finite sample outside a lane's own taps would spoil it, and whether it lies
  // in the window depends on how far the input has arrived, so streaming would disagree with
  // one-shot. Calls whose windows are all finite (the usual case) skip the fix.
  bool finite = true;
  if (!lane_blocks_.empty()) {
    std::size_t lo = lane_blocks_.front().start, hi = lo;
    for (const LaneBlock& block : lane_blocks_) {
      lo = std::min(lo, block.start);
      hi = std::max(hi, block.start);
    }
    for (const auto& h : history_) finite = finite && all_finite(h.data() + lo, hi - lo + span);
  }
  const S* coefs[kMaxLaneBlocks];
  const S* xs[kMaxLaneBlocks];
  S* outs[kMaxLaneBlocks];
  for (std::size_t first = 0; first < lane_blocks_.size(); first += kMaxLaneBlocks) {
    const std::size_t g = std::min(kMaxLaneBlocks, lane_blocks_.size() - first);
    const LaneBlock* group = lane_blocks_.data() + first;
    for (std::size_t q = 0; q < g; ++q) {
      coefs[q] = layout_->blocks.data() + group[q].b * span * lanes;
    }
    for (std::size_t c = 0; c < history_.size(); ++c) {
      for (std::size_t q = 0; q < g; ++q) {
        // Blocks wholly inside the call and the cycle go straight to the output.
        const LaneBlock& block = group[q];
        const bool whole = block.rel >= 0 && block.rel + static_cast<std::int64_t>(lanes) <= n &&
                           (block.b + 1) * lanes <= tile;
        xs[q] = history_[c].data() + block.start;
        outs[q] = whole ? dst[c] + block.rel : phase_out_.data() + q * lanes;
      }
      kernels_.lanes_blocks(coefs, xs, span, g, outs);
      for (std::size_t q = 0; q < g && !finite; ++q) {
        if (!all_finite(xs[q], span)) fix_lanes(group[q].b, coefs[q], xs[q], outs[q]);
      }
      for (std::size_t q = 0; q < g; ++q) {
        if (outs[q] != phase_out_.data() + q * lanes) continue;
        // The lanes that are outputs of the cycle and of this call.
        const LaneBlock& block = group[q];
        const auto valid =
            static_cast<std::int64_t>(std::min<std::uint64_t>(lanes, tile - block.b * lanes));
        const std::int64_t lo = std::max<std::int64_t>(0, -block.rel);
        const std::int64_t hi = std::min<std::int64_t>(valid, n - block.rel);
        if (lo < hi) std::copy(outs[q] + lo, outs[q] + hi, dst[c] + block.rel + lo);
      }
    }
  }
  advance(st, count);
}

template <typename S>
void Stage<S>::fix_lanes(std::size_t b, const S* coefs, const S* x, S* out) {
  const std::size_t lanes = kernels_.lanes, span = layout_->span, taps = design_->taps;
  // Lanes whose own taps see only finite samples: the kernel again on the window with the
  // non-finite samples zeroed. A zero coefficient times a finite sample changes a lane's sum
  // at most from -0 to +0 or back, and the kernel stores -0 as +0, so this is bit for bit what
  // the lane gives wherever those samples are finite, as when the input has not reached them.
  clean_window_.resize(span);
  clean_out_.resize(lanes);
  nan_before_.resize(span + 1);
  inf_before_.resize(span + 1);
  nan_before_[0] = inf_before_[0] = 0;
  for (std::size_t u = 0; u < span; ++u) {
    const bool nan = std::isnan(x[u]), inf = std::isinf(x[u]);
    nan_before_[u + 1] = nan_before_[u] + (nan ? 1 : 0);
    inf_before_[u + 1] = inf_before_[u] + (inf ? 1 : 0);
    clean_window_[u] = nan || inf ? S(0) : x[u];
  }
  const S* clean_coefs[1] = {coefs};
  const S* clean_x[1] = {clean_window_.data()};
  S* clean_out[1] = {clean_out_.data()};
  kernels_.lanes_blocks(clean_coefs, clean_x, span, 1, clean_out);
  const std::uint32_t* shift = layout_->lane_shift.data() + b * lanes;
  for (std::size_t l = 0; l < lanes; ++l) {
    // Lanes whose own taps (all of them: the same samples however the input is chunked) see
    // a NaN are NaN, as their sum would be; those that see only infinities get that sum in
    // a fixed order (an infinity or NaN).
    const std::size_t lo = shift[l], hi = lo + taps;
    if (nan_before_[hi] != nan_before_[lo]) {
      out[l] = std::numeric_limits<S>::quiet_NaN();
    } else if (inf_before_[hi] != inf_before_[lo]) {
      S sum = S(0);
      for (std::size_t u = lo; u < hi; ++u) sum += coefs[u * lanes + l] * x[u];
      out[l] = sum;
    } else {
      out[l] = clean_out_[l];
    }
  }
}

template <typename S>
void Stage<S>::produce_interpolated(StageState& st, std::size_t count, S* const* dst) {
  const S* table = design_->table.data();
  const S* rows[4];
  S sums[4];
  for (std::size_t i = 0; i < count; ++i) {
    const auto start = static_cast<std::size_t>(static_cast<std::int64_t>(st.next_index) -
                                                static_cast<std::int64_t>(st.before) - origin_);
    // Position between interpolation rows, from the exact integer phase so it does not depend
    // on how the stream was chunked.
    const std::uint64_t scaled = st.next_phase * kInterpPhases;
    const std::uint64_t p = scaled / st.up;
    const double mu = static_cast<double>(scaled % st.up) / static_cast<double>(st.up);
    const double w0 = -mu * (mu - 1.0) * (mu - 2.0) / 6.0;
    const double w1 = (mu + 1.0) * (mu - 1.0) * (mu - 2.0) / 2.0;
    const double w2 = -(mu + 1.0) * mu * (mu - 2.0) / 2.0;
    const double w3 = (mu + 1.0) * mu * (mu - 1.0) / 6.0;
    for (std::size_t r = 0; r < 4; ++r) rows[r] = table + (p + r) * st.taps;  // u = p-1 .. p+2
    for (std::size_t c = 0; c < history_.size(); ++c) {
      kernels_.interp4(rows, history_[c].data() + start, st.taps, sums);
      dst[c][i] = static_cast<S>((w0 * sums[0] + w1 * sums[1]) + (w2 * sums[2] + w3 * sums[3]));
    }
    advance(st, 1);
  }
}

template <typename S>
void Stage<S>::discard_consumed(const StageState& st) {
  const std::int64_t keep_from = history_start(st);
  const std::int64_t drop =
      std::min<std::int64_t>(keep_from - origin_, static_cast<std::int64_t>(length_));
  if (drop <= 0) return;
  if (!planar_) {
    for (auto& h : history_) h.erase(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(drop));
  } else {
    // keep_from and origin_ are multiples of rows_: whole columns go, the rest moves up.
    const std::size_t gone = static_cast<std::size_t>(drop) / rows_;
    const std::size_t held = (length_ + rows_ - 1) / rows_;
    for (auto& h : history_) {
      for (std::size_t r = 0; r < rows_; ++r) {
        S* row = h.data() + r * row_cap_;
        std::copy(row + gone, row + held, row);
        std::fill(row + held - gone, row + held, S(0));
      }
    }
  }
  length_ -= static_cast<std::size_t>(drop);
  origin_ += drop;
}

template class Stage<float>;
template class Stage<double>;

}  // namespace anunzi::detail
