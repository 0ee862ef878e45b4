"""Builds the extension ckptio._ckptio with the project's CMake, for `pip install .`.

By default CMake configures the whole project with only the library and the Python package
(no tests, examples, benchmarks or tool) and builds the extension, which links the library
statically. With CKPTIO_PREFIX set to the install prefix of an already built ckptio (its
lib/cmake/ckptio package), only python/ is configured, over that library, and only the
extension is compiled. Other environment variables: CKPTIO_BUILD_TYPE (default Release),
CKPTIO_CMAKE_ARGS (more arguments, split on spaces), CKPTIO_BUILD_JOBS (default: processors).
The extension's sources are compiled as one unit (CKPTIO_PYTHON_UNITY_BUILD), which halves the
compile time of pybind11 code; ccache is used when it is installed.
"""

import os
import pathlib
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        target = pathlib.Path(self.get_ext_fullpath(ext.name)).resolve()
        build_dir = pathlib.Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        prefix = os.environ.get("CKPTIO_PREFIX")
        args = [f"-DCKPTIO_PYTHON_EXECUTABLE={sys.executable}",
                f"-DCMAKE_BUILD_TYPE={os.environ.get('CKPTIO_BUILD_TYPE', 'Release')}",
                "-DCKPTIO_PYTHON_UNITY_BUILD=ON", "-DCKPTIO_BUILD_PYTHON=ON"]
        if prefix:
            source = ROOT / "python"
            args.append(f"-DCMAKE_PREFIX_PATH={pathlib.Path(prefix).resolve()}")
        else:
            source = ROOT
            args += ["-DCKPTIO_BUILD_TESTS=OFF", "-DCKPTIO_BUILD_EXAMPLES=OFF", "-DCKPTIO_BUILD_BENCH=OFF",
                     "-DCKPTIO_BUILD_TOOLS=OFF"]
        if shutil.which("ccache"):
            args += ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
        args += os.environ.get("CKPTIO_CMAKE_ARGS", "").split()
        subprocess.run(["cmake", "-S", str(source), "-B", str(build_dir), *args], check=True)
        jobs = os.environ.get("CKPTIO_BUILD_JOBS", str(os.cpu_count() or 1))
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "ckptio_python_extension", "--parallel", jobs],
                       check=True)
        built = sorted(build_dir.glob("**/ckptio/_ckptio*.so"))
        if len(built) != 1:
            raise RuntimeError(f"expected one built _ckptio*.so under {build_dir}, found {built}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], target)


# setuptools' own build folder beside CMake's build/ rather than inside it.
setup(ext_modules=[Extension("ckptio._ckptio", sources=[])], cmdclass={"build_ext": CMakeBuild},
      options={"build": {"build_base": "build-pip"}})
