/**
 * Tooltips that work in a plain SVG, with no script: Vega writes each mark item's description
 * (the charts set it to the item's tooltip text) as an `aria-label`; a `<title>` child with
 * the same text is what browsers show on hover. Only mark items (role graphics-symbol) get
 * one, not axes or legends.
 */
export function withTitles(svg: string): string {
  return svg.replace(
    /<([a-z]+)(\s[^>]*?\baria-label="([^"]*)"[^>]*?\brole="graphics-symbol"[^>]*?)(\/?)>/g,
    (_m, tag: string, attrs: string, label: string, selfClosing: string) =>
      selfClosing ? `<${tag}${attrs}><title>${label}</title></${tag}>` : `<${tag}${attrs}><title>${label}</title>`,
  );
}
