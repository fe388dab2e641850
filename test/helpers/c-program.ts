/** A tiny C program and its spec, for builds that make an arch binary (and -debuginfo when asked). */

/** hello.c: prints hello. */
export const HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n';

/** A spec that compiles hello.c (Source0) into /usr/bin/`name`; `doc` adds a noarch `name`-doc subpackage. */
export function helloCSpec(name: string, opts: { doc?: boolean } = {}): string {
  return [
    `Name: ${name}`,
    "Version: 1.0",
    "Release: 1",
    "Summary: a tiny C program",
    "License: MIT",
    "Source0: hello.c",
    "%description",
    "Says hello.",
    ...(opts.doc
      ? ["%package doc", "Summary: its documentation", "BuildArch: noarch", "%description doc", "Documentation."]
      : []),
    "%prep",
    "cp %{SOURCE0} .",
    "%build",
    `gcc %{optflags} -g -o ${name} hello.c`,
    "%install",
    `install -D -m 755 ${name} %{buildroot}/usr/bin/${name}`,
    ...(opts.doc
      ? [`mkdir -p %{buildroot}/usr/share/doc/${name} && echo hi > %{buildroot}/usr/share/doc/${name}/README`]
      : []),
    "%files",
    `/usr/bin/${name}`,
    ...(opts.doc ? ["%files doc", `/usr/share/doc/${name}`] : []),
    "",
  ].join("\n");
}
