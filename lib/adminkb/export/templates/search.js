// Client-side search over the runbooks' headings and text. The index data is the JSON in the
// element #adminkb-search-data; results are built with textContent only, so no page text is
// ever parsed as HTML.
(function () {
  "use strict";
  var dataElement = document.getElementById("adminkb-search-data");
  var input = document.getElementById("adminkb-search-input");
  var status = document.getElementById("adminkb-search-status");
  var list = document.getElementById("adminkb-search-results");
  if (!dataElement || !input || !status || !list) {
    return;
  }
  var data = JSON.parse(dataElement.textContent);
  var maxResults = 50;
  var snippetRadius = 60;

  function normalize(text) {
    return text.toLocaleLowerCase("zh-TW");
  }

  var sections = [];
  data.pages.forEach(function (page) {
    page.sections.forEach(function (section) {
      sections.push({
        page: page,
        section: section,
        haystack: normalize(section.heading + "\n" + section.text)
      });
    });
  });

  function appendSnippet(container, text, term) {
    var lower = normalize(text);
    var at = lower.indexOf(term);
    if (at < 0) {
      container.appendChild(document.createTextNode(text.slice(0, snippetRadius * 2)));
      return;
    }
    var start = Math.max(0, at - snippetRadius);
    var end = Math.min(text.length, at + term.length + snippetRadius);
    container.appendChild(document.createTextNode((start > 0 ? "…" : "") + text.slice(start, at)));
    var mark = document.createElement("mark");
    mark.textContent = text.slice(at, at + term.length);
    container.appendChild(mark);
    container.appendChild(document.createTextNode(text.slice(at + term.length, end) + (end < text.length ? "…" : "")));
  }

  function search() {
    var query = input.value.trim();
    list.textContent = "";
    if (!query) {
      status.textContent = "";
      return;
    }
    var terms = normalize(query).split(/\s+/).filter(function (term) { return term.length > 0; });
    var found = sections.filter(function (entry) {
      return terms.every(function (term) { return entry.haystack.indexOf(term) >= 0; });
    });
    if (found.length === 0) {
      status.textContent = data.labels.noResults.replace("{query}", query);
      return;
    }
    status.textContent = data.labels.results.replace("{count}", String(found.length));
    found.slice(0, maxResults).forEach(function (entry) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = entry.page.url + (entry.section.id ? "#" + entry.section.id : "");
      var heading = entry.section.heading;
      link.textContent = entry.page.title + (heading && heading !== entry.page.title ? " › " + heading : "");
      item.appendChild(link);
      var snippet = document.createElement("span");
      snippet.className = "adminkb-snippet";
      appendSnippet(snippet, entry.section.text, terms[0]);
      item.appendChild(snippet);
      list.appendChild(item);
    });
  }

  input.addEventListener("input", search);
  if (input.value) {
    search();
  }
}());
