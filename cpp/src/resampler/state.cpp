#include "state.hpp"

#include <algorithm>

namespace anunzi::detail {

void StageState::restart() {
  total_in = 0;
  emitted = 0;
  next_index = 0;
  next_phase = 0;
}

std::uint64_t StageState::ready_count(std::uint64_t total_in_frames) const {
  if (total_in_frames <= after) return 0;
  const std::uint64_t q = total_in_frames - after;  // need floor(k * down / up) < q
  return (q * up + down - 1) / down;
}

std::uint64_t StageState::inputs_needed(std::uint64_t outputs) const {
  if (outputs == 0) return 0;
  return (outputs - 1) * down / up + after + 1;
}

const char* StageState::design_method() const {
  if (halfband) return "half-band";
  switch (kind) {
    case PrototypeKind::kEquiripple:
      return "equiripple";
    case PrototypeKind::kSmoothedEquiripple:
      return "smoothed equiripple";
    case PrototypeKind::kKaiser:
      break;
  }
  return "kaiser";
}

void StreamState::restart() {
  for (StageState& s : stages) s.restart();
  clips = 0;
  finished = false;
}

std::uint64_t StreamState::ready_count(std::uint64_t total_in_frames) const {
  std::uint64_t n = total_in_frames;
  for (const StageState& s : stages) n = s.ready_count(n);
  return n;
}

std::uint64_t StreamState::oneshot_length(std::uint64_t in_frames) const {
  return (2 * in_frames * up + down) / (2 * down);
}

std::uint64_t StreamState::oneshot_frames(std::uint64_t in_frames) const {
  return std::max(oneshot_length(in_frames), ready_count(in_frames));
}

std::uint64_t StreamState::output_frames_for(std::uint64_t in_frames, bool last) const {
  const std::uint64_t total = total_in() + in_frames;
  const std::uint64_t total_out =
      last ? std::max(oneshot_length(total), ready_count(total)) : ready_count(total);
  return total_out > emitted() ? total_out - emitted() : 0;
}

std::vector<std::uint64_t> StreamState::flush_targets(std::uint64_t total_in_frames) const {
  std::vector<std::uint64_t> target(stages.size());
  std::uint64_t n = total_in_frames;
  for (std::size_t s = 0; s < stages.size(); ++s) target[s] = n = stages[s].ready_count(n);
  target.back() = std::max(target.back(), oneshot_length(total_in_frames));
  for (std::size_t s = stages.size() - 1; s > 0; --s) {
    target[s - 1] = std::max(target[s - 1], stages[s].inputs_needed(target[s]));
  }
  return target;
}

double StreamState::delay() const {
  if (finished) return 0.0;
  const double owed = static_cast<double>(total_in()) * static_cast<double>(up) /
                          static_cast<double>(down) -
                      static_cast<double>(emitted());
  return std::max(0.0, owed);
}

double StreamState::latency_frames() const {
  // Each stage's look-ahead, in its own input samples, carried to the output rate.
  double latency = 0.0;
  for (const StageState& s : stages) {
    latency = (latency + static_cast<double>(s.after)) * static_cast<double>(s.up) /
              static_cast<double>(s.down);
  }
  return latency;
}

double StreamState::multiply_adds_per_output() const {
  double total = 0.0;
  for (const StageState& s : stages) {
    total = total * static_cast<double>(s.down) / static_cast<double>(s.up) + s.nonzero_taps;
  }
  return total;
}

}  // namespace anunzi::detail
