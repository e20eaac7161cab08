"""A finished job's answer written out as documents: plain text, hOCR 1.2, ALTO 4 and a searchable
PDF (the page images under an invisible text layer). Plain functions over the answer's pages and
lines (``document.Page``); no image is decoded here but the one a PDF page shows, and nothing
here loads ONNX Runtime or OpenCV, so the web process writes them."""
