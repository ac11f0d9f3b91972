#pragma once
// The memory plan as `qwenvl plan` prints it (text or JSON), also printed by `generate --verbose`,
// and the --device-map file both read.
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/memory_planner.h"

namespace qwenvl::cli {

// A JSON object {module: "cuda:N" | N | "cpu" | "stream"}; Error for anything else.
std::map<std::string, std::string> read_device_map(const std::string& path);

std::string plan_text(const std::string& dir, const PlannerInput& in, const PlacementPlan& plan);
nlohmann::json plan_json(const std::string& dir, const PlannerInput& in, const PlacementPlan& plan);

}  // namespace qwenvl::cli
