#pragma once
// Byte-level mutations for the fuzz tests of parsers (safetensors headers, JSON configs): flipped
// bits, random, inserted and deleted bytes, truncation, JSON-significant characters, and digit
// runs that push numbers past their limits. Driven by a seeded generator so a failure reproduces.
#include <random>
#include <string>

namespace qwenvl::test {

inline std::string mutate(std::string bytes, std::mt19937& rng) {
  int edits = 1 + int(rng() % 4);
  for (int e = 0; e < edits && !bytes.empty(); ++e) {
    size_t at = rng() % bytes.size();
    switch (rng() % 7) {
      case 0:
        bytes[at] = char(bytes[at] ^ (1 << (rng() % 8)));
        break;  // flip one bit
      case 1:
        bytes[at] = char(rng() & 0xff);
        break;  // random byte
      case 2:
        bytes.insert(bytes.begin() + long(at), char(rng() & 0xff));
        break;
      case 3:
        bytes.erase(at, 1 + rng() % 8);
        break;
      case 4:
        bytes.resize(at);
        break;   // truncate
      case 5: {  // a JSON-significant character
        static const char kChars[] = "{}[]\":,0-9e.\\ ";
        bytes[at] = kChars[rng() % (sizeof(kChars) - 1)];
        break;
      }
      case 6: {  // a digit run, to push numbers past their limits
        std::string digits(1 + rng() % 24, '9');
        bytes.insert(at, digits);
        break;
      }
    }
  }
  return bytes;
}

}  // namespace qwenvl::test
