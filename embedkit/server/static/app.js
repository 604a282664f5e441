// Drag-and-drop onto the photo fields; nothing else needs JavaScript.
document.querySelectorAll("label.drop").forEach(function (zone) {
  var input = zone.querySelector("input[type=file]");
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      zone.querySelector("span").textContent = event.dataTransfer.files[0].name;
    }
  });
  input.addEventListener("change", function () {
    if (input.files.length) { zone.querySelector("span").textContent = input.files[0].name; }
  });
});
