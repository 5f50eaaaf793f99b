"""tools/check_artifacts.py: it must fail on what provided.al2023 cannot run."""

import shutil
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import check_artifacts  # noqa: E402

HEADER = """ELF Header:
  Type:                              DYN (Position-Independent Executable file)
  Machine:                           AArch64
"""
DYNAMIC = """ 0x0000000000000001 (NEEDED)             Shared library: [libgcc_s.so.1]
 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]
"""
VERSIONS = """Version needs section '.gnu.version_r' contains 2 entries:
  0x0010:   Name: GLIBC_2.17  Flags: none  Version: 3
  0x0020:   Name: GLIBC_2.34  Flags: none  Version: 2
  0x0030:   Name: GLIBC_2.28  Flags: none  Version: 4
"""


class CheckArtifacts(unittest.TestCase):
    def test_reads_what_a_binary_needs(self):
        found = check_artifacts.needs(HEADER, DYNAMIC, VERSIONS)
        self.assertEqual(found, {"type": "DYN", "machine": "aarch64",
                                 "libraries": ["libgcc_s.so.1", "libc.so.6"], "max_glibc": "2.34"})
        self.assertEqual(check_artifacts.problems(found, "2.34"), [])

    def test_a_newer_glibc_or_a_missing_library_fails_with_its_name(self):
        found = check_artifacts.needs(HEADER, DYNAMIC + " (NEEDED) Shared library: [libssl.so.3]\n",
                                      VERSIONS + "  0x0040:   Name: GLIBC_2.38  Flags: none\n")
        wrong = " ".join(check_artifacts.problems(found, "2.34"))
        self.assertIn("GLIBC_2.38", wrong)
        self.assertIn("libssl.so.3", wrong)
        # 2.4 < 2.34: versions compare as numbers, not text.
        self.assertEqual(check_artifacts.version("2.4") < check_artifacts.version("2.34"), True)

    @unittest.skipUnless(shutil.which("readelf"), "readelf (binutils) not installed")
    def test_a_real_binary_passes_or_fails_by_the_limit(self):
        true = shutil.which("true")
        self.assertEqual(check_artifacts.main(["--max-glibc", "2.99", true]), 0)
        self.assertEqual(check_artifacts.main(["--max-glibc", "2.2", true]), 1)
        self.assertEqual(check_artifacts.main([__file__]), 1, "not ELF")


if __name__ == "__main__":
    unittest.main()
