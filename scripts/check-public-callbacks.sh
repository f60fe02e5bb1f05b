#!/usr/bin/env bash
# Shows that the built-in callbacks use Lightning.Core's public API only: compiles every file under
# src/Lightning.Core/Callbacks/ (except the Callback base itself) into a separate assembly that references the built
# Lightning.Core.dll, which grants internals to its tests alone. Exit code 0 when they compile.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dotnet build "$root/src/Lightning.Core" -c Debug -v quiet -nologo >/dev/null || { echo "Lightning.Core does not build"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
torchsharp="$(dirname "$(find "${NUGET_PACKAGES:-$HOME/.nuget/packages}/torchsharp" -path '*lib/net8.0/TorchSharp.dll' | sort | tail -1)")"
cat > "$work/PublicCallbacks.csproj" <<PROJECT
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
    <!-- The copies replace the library's callbacks of the same names here (CS0436); that is the point. -->
    <NoWarn>CS0436;CS1591</NoWarn>
    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
    <EnableDefaultCompileItems>false</EnableDefaultCompileItems>
  </PropertyGroup>
  <ItemGroup>
    <Compile Include="$root/src/Lightning.Core/Callbacks/*.cs" Exclude="$root/src/Lightning.Core/Callbacks/Callback.cs" />
    <Reference Include="$root/src/Lightning.Core/bin/Debug/net10.0/Lightning.Core.dll" />
    <Reference Include="$torchsharp/TorchSharp.dll" />
  </ItemGroup>
</Project>
PROJECT
if ! output="$(dotnet build "$work/PublicCallbacks.csproj" -nologo -v quiet 2>&1)"; then
  grep -E ' error ' <<<"$output" | sed -e "s|$root/||" -e 's/ \[.*//' | sort -u || true
  echo "callbacks use API that is not public (above)"
  exit 1
fi
echo "callbacks compile against the public API of Lightning.Core: $(ls "$root"/src/Lightning.Core/Callbacks/*.cs | grep -v '/Callback.cs$' | wc -l) files"
