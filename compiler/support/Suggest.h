// "Did you mean": the known name closest to a misspelt one (`tahn` -> `tanh`, `--epoch` ->
// `--epochs`), as Python suggests for a NameError. Header only: the model checker and the
// command line use it.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace gradc {

/// Edits between a and b: insertions, deletions, substitutions and swaps of two neighbours
/// (the optimal string alignment distance).
inline size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

/// The candidate closest to `name`, when it is close enough to be a slip of the keyboard (one
/// edit in a name of up to 5 characters, two in a longer one; never a name as different as it
/// is long), else "". Ties go to the first candidate.
inline std::string closestName(std::string_view name, const std::vector<std::string> &candidates) {
  if (name.size() > 64) return "";  // (a long name is no typo, and the table grows with it)
  size_t limit = name.size() <= 5 ? 1 : 2, best = limit + 1;
  std::string found;
  for (const std::string &c : candidates) {
    if (c == name || c.size() > 64) continue;
    size_t d = editDistance(name, c);
    if (d < best && d < std::max(name.size(), c.size())) {
      best = d;
      found = c;
    }
  }
  return found;
}

/// `; did you mean `X`?` for the closest candidate, or "".
inline std::string didYouMean(std::string_view name, const std::vector<std::string> &candidates) {
  std::string c = closestName(name, candidates);
  return c.empty() ? "" : "; did you mean `" + c + "`?";
}

}  // namespace gradc
