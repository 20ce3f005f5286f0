// Typeset the maths that pymdownx.arithmatex leaves as \( … \) and \[ … \] (KaTeX, served with the site).
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
      { left: "$$", right: "$$", display: true },
    ],
    throwOnError: false,
  });
});
