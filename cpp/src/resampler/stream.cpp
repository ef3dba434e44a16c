#include "stream.hpp"

#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "stages.hpp"

namespace anunzi::detail {
namespace {

StreamState configuration(RateRatio ratio, std::size_t channels, bool use_double, Isa isa) {
  StreamState st;
  st.up = ratio.up;
  st.down = ratio.down;
  st.channels = channels;
  st.isa = isa;
  st.double_precision = use_double;
  return st;
}

template <typename S>
using Designs = std::vector<std::shared_ptr<const FilterDesign<S>>>;

template <typename S>
Designs<S> design_plan(const std::vector<StageSpec>& plan) {
  Designs<S> designs;
  for (const StageSpec& stage : plan) designs.push_back(cached_design<S>(stage));
  return designs;
}

// A plan's latency in seconds: each stage's look-ahead, carried to the output rate.
template <typename S>
double latency_seconds(const std::vector<StageSpec>& plan, const Designs<S>& designs,
                       double out_rate) {
  double latency = 0.0;
  for (std::size_t s = 0; s < plan.size(); ++s) {
    latency = (latency + static_cast<double>(designs[s]->after)) *
              static_cast<double>(plan[s].up) / static_cast<double>(plan[s].down);
  }
  return latency / out_rate;
}

// Designs (or takes from the cache) the stages of the first candidate plan whose latency
// stays within kCascadeLatencyBudget or the single stage's, records the plan in `st` and
// builds the cascade that runs it (whose stages record their layouts in `st`).
template <typename S>
std::variant<Cascade<float>, Cascade<double>> cascade_for(
    StreamState& st, const std::vector<std::vector<StageSpec>>& candidates, double out_rate) {
  const std::vector<StageSpec>& single = candidates.back();
  std::optional<double> single_latency;
  for (const std::vector<StageSpec>& plan : candidates) {
    Designs<S> designs = design_plan<S>(plan);
    if (&plan != &single) {
      const double latency = latency_seconds(plan, designs, out_rate);
      if (latency > kCascadeLatencyBudget) {
        if (!single_latency) {
          single_latency = latency_seconds(single, design_plan<S>(single), out_rate);
        }
        if (latency > *single_latency) continue;
      }
    }
    st.stages.assign(plan.size(), StageState{});
    for (std::size_t s = 0; s < plan.size(); ++s) {
      st.stages[s].up = plan[s].up;
      st.stages[s].down = plan[s].down;
    }
    return std::variant<Cascade<float>, Cascade<double>>(std::in_place_type<Cascade<S>>, st,
                                                         std::move(designs));
  }
  throw std::logic_error("no plan");  // unreachable: the single stage is always accepted
}

}  // namespace

Stream::Stream(RateRatio ratio, double out_rate, std::size_t channels, const FilterSpec& spec,
               bool use_double, Isa isa)
    : state_(configuration(ratio, channels, use_double, isa)),
      engine_(use_double
                  ? cascade_for<double>(state_, plan_candidates(ratio.up, ratio.down, spec),
                                        out_rate)
                  : cascade_for<float>(state_, plan_candidates(ratio.up, ratio.down, spec),
                                       out_rate)) {}

Stream::Stream(const Stream& other, FreshCopy)
    : state_(other.state_),
      engine_(std::visit(
          [this](const auto& cascade) {
            using C = std::decay_t<decltype(cascade)>;
            return std::variant<Cascade<float>, Cascade<double>>(std::in_place_type<C>, state_,
                                                                 cascade);
          },
          other.engine_)) {}

std::unique_ptr<Stream> Stream::fresh_copy() const {
  return std::unique_ptr<Stream>(new Stream(*this, FreshCopy{}));
}

std::size_t Stream::process(const StridedConstView& in, bool last, const StridedView& out) {
  if (state_.finished) throw std::logic_error("Input after last input");
  if (out.frames != state_.output_frames_for(in.frames, last))
    throw std::invalid_argument("output view has the wrong number of frames");
  return std::visit([&](auto& cascade) { return cascade.process(state_, in, last, out); },
                    engine_);
}

void Stream::clear() {
  std::visit([&](auto& cascade) { cascade.clear(state_); }, engine_);
}

std::uint64_t Stream::start_at_output(std::uint64_t first) {
  return std::visit([&](auto& cascade) { return cascade.start_at_output(state_, first); },
                    engine_);
}

}  // namespace anunzi::detail
